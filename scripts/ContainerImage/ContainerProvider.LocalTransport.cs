// ContainerProvider.LocalTransport: the handlers with which the ContainerImage
// module reaches providerd's local API on PowerShell 7 (.NET 6 and later):
// its unix socket (unix:///run/containerprovider/providerd.sock) or, on
// Windows, its named pipe (npipe:////./pipe/containerprovider), whose
// access is the credential, as docker's are. SocketsHttpHandler speaks
// HTTP/1.1 over the stream that ConnectCallback opens; the URL's host is
// then a placeholder. ContainerProviderApi.psm1 compiles this file with
// Add-Type only when an endpoint needs it; Windows PowerShell 5.1 has no
// SocketsHttpHandler and reaches providerd over TCP.
using System.IO;
using System.IO.Pipes;
using System.Net.Http;
using System.Net.Sockets;

namespace ContainerProvider
{
    public static class LocalTransport
    {
        // UnixSocket returns a handler whose every connection is a new
        // connection to the unix socket at path.
        public static HttpMessageHandler UnixSocket(string path)
        {
            SocketsHttpHandler handler = new SocketsHttpHandler();
            handler.UseProxy = false;
            handler.AllowAutoRedirect = false;
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                Socket socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
            return handler;
        }

        // NamedPipe returns a handler whose every connection is a new
        // client of the local named pipe \\.\pipe\name.
        public static HttpMessageHandler NamedPipe(string name)
        {
            SocketsHttpHandler handler = new SocketsHttpHandler();
            handler.UseProxy = false;
            handler.AllowAutoRedirect = false;
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                NamedPipeClientStream pipe = new NamedPipeClientStream(".", name, PipeDirection.InOut, PipeOptions.Asynchronous);
                try
                {
                    await pipe.ConnectAsync(cancellationToken).ConfigureAwait(false);
                    return pipe;
                }
                catch
                {
                    pipe.Dispose();
                    throw;
                }
            };
            return handler;
        }
    }
}
