// ContainerProvider.Tls: the certificate check with which the ContainerImage
// module trusts, besides the system's roots, the certificates of a PEM file
// ($env:CONTAINERPROVIDER_CA_FILE): a self-signed certificate of providerd
// (--tls-cert), or the private CA that issued it. The host name is checked
// as always; only the root of the chain may be one of the file's
// certificates instead of a system root. Written in C# 5, so that Windows
// PowerShell 5.1 (.NET Framework 4.7.1 and later, whose HttpClientHandler
// has ServerCertificateCustomValidationCallback) compiles it too.
using System;
using System.IO;
using System.Net.Http;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
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
                if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate == null)
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
