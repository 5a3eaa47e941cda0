using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace ModelSeal.Server.Tests;

/// <summary>
/// HTTP/1.1 over a plain TCP connection, byte for byte: for requests no HTTP client would send (malformed request
/// lines, exact header sizes). One request per connection; the answer is read as far as it goes.
/// </summary>
internal static class RawHttp
{
    /// <summary>A status line, header fields, the (de-chunked) body, and whether the server then closed the connection.</summary>
    public sealed record Answer(int Status, Dictionary<string, string> Headers, string Body, bool Closed)
    {
        public string? ContentType => Headers.TryGetValue("content-type", out string? value) ? value : null;

        public override string ToString() => $"{Status} {ContentType} {Body}";

        /// <summary>Asserts a problem answer (docs/protocol.md section 6) with this status and code.</summary>
        public void AssertProblem(int status, string code)
        {
            Assert.True(Status == status, $"Expected {status} {code}, got {this}");
            Assert.StartsWith("application/problem+json", ContentType ?? string.Empty, StringComparison.Ordinal);
            using JsonDocument json = JsonDocument.Parse(Body);
            Assert.Equal($"https://modelseal.dev/problems/{code}", json.RootElement.GetProperty("type").GetString());
            Assert.Equal(status, json.RootElement.GetProperty("status").GetInt32());
        }
    }

    /// <summary>Sends <paramref name="request"/> as ASCII (every char must be below 0x80); see <see cref="SendAsync(Uri, byte[])"/>.</summary>
    public static Task<Answer> SendAsync(Uri server, string request) => SendAsync(server, Encoding.ASCII.GetBytes(request));

    /// <summary>
    /// Connects to <paramref name="server"/>, writes <paramref name="request"/>, reads one answer and then whether the
    /// server closes the connection (a well-formed request should ask for that with <c>Connection: close</c>; a server
    /// that keeps the connection open for 30 s counts as not closing it). A server that stops reading and resets the
    /// connection while the request is still being written is tolerated as long as its answer arrives.
    /// </summary>
    public static async Task<Answer> SendAsync(Uri server, byte[] request)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(request);
        CancellationToken cancel = TestContext.Current.CancellationToken;
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port, cancel);
        NetworkStream stream = client.GetStream();
        try
        {
            await stream.WriteAsync(request, cancel);
        }
        catch (IOException)
        {
            // The server answered and closed before reading everything: its answer is still read below.
        }

        var reader = new Reader(stream, cancel);
        string head = await reader.ReadHeadAsync();
        string[] lines = head.Split("\r\n");
        string[] statusLine = lines[0].Split(' ', 3);
        Assert.True(statusLine.Length >= 2 && statusLine[0].StartsWith("HTTP/1.", StringComparison.Ordinal), $"Not an HTTP/1 status line: '{lines[0]}'");
        int status = int.Parse(statusLine[1], NumberStyles.None, CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in lines.Skip(1).Where(l => l.Length > 0))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        byte[] body;
        if (headers.TryGetValue("transfer-encoding", out string? encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var chunks = new MemoryStream();
            while (true)
            {
                string sizeLine = await reader.ReadLineAsync();
                int size = int.Parse(sizeLine.Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    while ((await reader.ReadLineAsync()).Length > 0)
                    {
                    }

                    break;
                }

                chunks.Write(await reader.ReadExactlyAsync(size));
                await reader.ReadLineAsync();
            }

            body = chunks.ToArray();
        }
        else
        {
            int length = headers.TryGetValue("content-length", out string? declared) ? int.Parse(declared, NumberStyles.None, CultureInfo.InvariantCulture) : 0;
            body = await reader.ReadExactlyAsync(length);
        }

        return new Answer(status, headers, Encoding.UTF8.GetString(body), await reader.EndsAsync());
    }

    /// <summary>A buffered reader of one connection.</summary>
    private sealed class Reader(NetworkStream stream, CancellationToken cancel)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        public async Task<string> ReadHeadAsync()
        {
            var head = new StringBuilder();
            string line;
            while ((line = await ReadLineAsync()).Length > 0)
            {
                head.Append(line).Append("\r\n");
            }

            return head.ToString();
        }

        public async Task<string> ReadLineAsync()
        {
            var line = new MemoryStream();
            while (true)
            {
                if (_start == _end && !await FillAsync())
                {
                    throw new EndOfStreamException("The connection ended inside a line: " + Encoding.ASCII.GetString(line.ToArray()));
                }

                byte b = _buffer[_start++];
                if (b == '\n')
                {
                    byte[] bytes = line.ToArray();
                    return Encoding.ASCII.GetString(bytes, 0, bytes.Length > 0 && bytes[^1] == '\r' ? bytes.Length - 1 : bytes.Length);
                }

                line.WriteByte(b);
            }
        }

        public async Task<byte[]> ReadExactlyAsync(int count)
        {
            byte[] result = new byte[count];
            int filled = 0;
            while (filled < count)
            {
                if (_start == _end && !await FillAsync())
                {
                    throw new EndOfStreamException($"The connection ended after {filled} of {count} body bytes.");
                }

                int take = Math.Min(count - filled, _end - _start);
                Array.Copy(_buffer, _start, result, filled, take);
                _start += take;
                filled += take;
            }

            return result;
        }

        /// <summary>True when the server closes the connection (end of stream or reset) with nothing more to say.</summary>
        public async Task<bool> EndsAsync()
        {
            if (_start != _end)
            {
                return false;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            try
            {
                _start = 0;
                _end = await stream.ReadAsync(_buffer, timeout.Token);
                return _end == 0;
            }
            catch (IOException)
            {
                return true;
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                return false;
            }
        }

        private async Task<bool> FillAsync()
        {
            _start = 0;
            _end = await stream.ReadAsync(_buffer, cancel);
            return _end > 0;
        }
    }
}
