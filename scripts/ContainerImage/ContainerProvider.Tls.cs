// ContainerProvider.Tls: the certificate check with which the ContainerImage
// module trusts, besides the system's roots, the certificates of a PEM file
// ($env:CONTAINERPROVIDER_CA_FILE): a self-signed certificate of providerd
// (--tls-cert), or the private CA that issued it. Only the root of the
// chain may be one of the file's certificates instead of a system root;
// the host name is checked as always, and checked here again against the
// certificate's subject alternative names, as Go's TLS client does, since
// a runtime may leave the name unchecked once the chain has failed (Mono
// does). Written in C# 5, so that Windows PowerShell 5.1 (.NET Framework
// 4.7.1 and later, whose HttpClientHandler has
// ServerCertificateCustomValidationCallback) compiles it too.
using System;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;

namespace ContainerProvider
{
    public static class Tls
    {
        // TrustAlso returns the callback of HttpClientHandler that accepts a
        // server certificate whose chain ends at a system root or at a
        // certificate of the PEM file at path.
        public static Func<HttpRequestMessage, X509Certificate2, X509Chain, SslPolicyErrors, bool> TrustAlso(string path)
        {
            X509Certificate2Collection anchors = ReadPem(path);
            if (anchors.Count == 0)
            {
                throw new InvalidDataException(path + " holds no PEM certificate");
            }
            return delegate (HttpRequestMessage request, X509Certificate2 certificate, X509Chain chain, SslPolicyErrors errors)
            {
                if (errors == SslPolicyErrors.None)
                {
                    return true;
                }
                // A wrong host name or no certificate is never accepted.
                if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate == null || !MatchesHost(certificate, request.RequestUri.Host))
                {
                    return false;
                }
                using (X509Chain own = new X509Chain())
                {
                    own.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    own.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                    own.ChainPolicy.ExtraStore.AddRange(anchors);
                    if (!own.Build(certificate))
                    {
                        return false;
                    }
                    // Built with an unknown authority allowed: every other
                    // problem (expiry, usage, signature) still fails it.
                    foreach (X509ChainStatus status in own.ChainStatus)
                    {
                        if (status.Status != X509ChainStatusFlags.UntrustedRoot && status.Status != X509ChainStatusFlags.NoError)
                        {
                            return false;
                        }
                    }
                    X509Certificate2 root = own.ChainElements[own.ChainElements.Count - 1].Certificate;
                    foreach (X509Certificate2 anchor in anchors)
                    {
                        if (anchor.RawData.Length == root.RawData.Length && anchor.Thumbprint == root.Thumbprint)
                        {
                            return true;
                        }
                    }
                    return false;
                }
            };
        }

        // MatchesHost says whether a subject alternative name of certificate
        // (a dNSName, '*.' matching one label, or an iPAddress) names host.
        static bool MatchesHost(X509Certificate2 certificate, string host)
        {
            host = host.Trim('[', ']').TrimEnd('.').ToLowerInvariant();
            IPAddress ip;
            byte[] address = IPAddress.TryParse(host, out ip) ? ip.GetAddressBytes() : null;
            foreach (X509Extension extension in certificate.Extensions)
            {
                if (extension.Oid.Value != "2.5.29.17")
                {
                    continue;
                }
                byte[] der = extension.RawData;
                int end;
                int at = Enter(der, 0, 0x30, out end);
                while (at >= 0 && at < end)
                {
                    byte tag = der[at];
                    int valueEnd;
                    int value = Enter(der, at, tag, out valueEnd);
                    if (value < 0)
                    {
                        return false;
                    }
                    int length = valueEnd - value;
                    if (tag == 0x82 && address == null)
                    {
                        string name = Encoding.ASCII.GetString(der, value, length).TrimEnd('.').ToLowerInvariant();
                        if (name == host || (name.StartsWith("*.") && host.IndexOf('.') > 0 && host.Substring(host.IndexOf('.')) == name.Substring(1)))
                        {
                            return true;
                        }
                    }
                    if (tag == 0x87 && address != null && length == address.Length)
                    {
                        bool same = true;
                        for (int i = 0; i < length; i++)
                        {
                            same = same && der[value + i] == address[i];
                        }
                        if (same)
                        {
                            return true;
                        }
                    }
                    at = valueEnd;
                }
            }
            return false;
        }

        // Enter reads the DER header of the element at at, which must have
        // tag, and returns where its value starts (and, in end, where it
        // ends), or -1 for a malformed element.
        static int Enter(byte[] der, int at, byte tag, out int end)
        {
            end = -1;
            if (at + 2 > der.Length || der[at] != tag)
            {
                return -1;
            }
            int length = der[at + 1];
            int value = at + 2;
            if (length > 0x80)
            {
                int count = length & 0x7f;
                if (count > 3 || value + count > der.Length)
                {
                    return -1;
                }
                length = 0;
                for (int i = 0; i < count; i++)
                {
                    length = (length << 8) | der[value + i];
                }
                value += count;
            }
            else if (length == 0x80)
            {
                return -1;
            }
            end = value + length;
            return end <= der.Length ? value : -1;
        }

        // ReadPem reads every CERTIFICATE block of a PEM file.
        static X509Certificate2Collection ReadPem(string path)
        {
            X509Certificate2Collection certificates = new X509Certificate2Collection();
            string text = File.ReadAllText(path);
            foreach (Match m in Regex.Matches(text, "-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\\s]+)-----END CERTIFICATE-----"))
            {
                byte[] der = Convert.FromBase64String(Regex.Replace(m.Groups[1].Value, "\\s", ""));
                certificates.Add(new X509Certificate2(der));
            }
            return certificates;
        }
    }
}
