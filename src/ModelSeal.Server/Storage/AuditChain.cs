using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ModelSeal.Server.Storage;

/// <summary>
/// The audit hash chain (docs/protocol.md section 4.1): <c>hash = SHA-256(previous hash || encoding of the record)</c>,
/// the first record chaining to 32 zero bytes. Each record is encoded in the format it was written in, so the chain
/// never needs a migration of old records: format 1 (fixed fields, records written before schema version 3) and
/// format 2 (named attributes; what is appended now). Pure functions: no database.
/// </summary>
internal static class AuditChain
{
    /// <summary>The size of a link in bytes.</summary>
    public const int HashSize = 32;

    /// <summary>The fixed-field encoding of the first schemas.</summary>
    public const int LegacyFormat = 1;

    /// <summary>The format of every record appended now.</summary>
    public const int CurrentFormat = 2;

    /// <summary>The first byte of every format-2-or-later encoding; never the first byte of a format-1 record (its id is below 2^63).</summary>
    public const byte FormatMarker = 0xFF;

    /// <summary>The longest attribute name.</summary>
    public const int MaxAttributeNameLength = 64;

    /// <summary>The attribute names the fixed fields of <see cref="AuditEntry"/> have in format 2 (and in JSON).</summary>
    private static readonly string[] FixedNames = ["event", "outcome", "subject", "issuer", "licenceId", "modelId", "version", "keyId", "device", "client"];

    /// <summary>The value the first record chains to.</summary>
    public static byte[] Genesis => new byte[HashSize];

    /// <summary>The hash of a record after <paramref name="previous"/>.</summary>
    public static byte[] Link(ReadOnlySpan<byte> previous, long id, long at, AuditEntry entry, int format = CurrentFormat)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(previous);
        hash.AppendData(Encode(id, at, entry, format));
        return hash.GetHashAndReset();
    }

    /// <summary>The record's encoding in <paramref name="format"/>.</summary>
    public static byte[] Encode(long id, long at, AuditEntry entry, int format = CurrentFormat)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return format switch
        {
            LegacyFormat => EncodeLegacy(id, at, entry),
            CurrentFormat => EncodeAttributes(id, at, entry),
            _ => throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"Audit record {id} has format {format}, which this server does not know.")),
        };
    }

    /// <summary>
    /// Format 1: <c>u64(id) || i64(at) || field(event) || field(subject) || field(licenceId) || field(modelId) ||
    /// field(version) || field(keyId) || field(device) || field(client) || field(outcome)</c>, big endian;
    /// <c>field(null) = 0x00</c>, <c>field(s) = 0x01 || u32(UTF-8 length of s) || UTF-8 bytes of s</c>. It has no
    /// place for an issuer or attributes: a record that has them cannot be written in format 1.
    /// </summary>
    private static byte[] EncodeLegacy(long id, long at, AuditEntry entry)
    {
        if (entry.Issuer is not null || entry.Attributes is { Count: > 0 })
        {
            throw new InvalidOperationException("A format-1 audit record has no issuer or attributes.");
        }

        string?[] fields = [entry.Event, entry.Subject, entry.LicenceId, entry.ModelId, entry.Version, entry.KeyId, entry.Device, entry.Client, entry.Outcome];
        int length = 16;
        foreach (string? field in fields)
        {
            length += field is null ? 1 : 5 + Encoding.UTF8.GetByteCount(field);
        }

        byte[] bytes = new byte[length];
        BinaryPrimitives.WriteInt64BigEndian(bytes, id);
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(8), at);
        int offset = 16;
        foreach (string? field in fields)
        {
            if (field is null)
            {
                bytes[offset++] = 0;
                continue;
            }

            bytes[offset] = 1;
            int written = Encoding.UTF8.GetBytes(field, bytes.AsSpan(offset + 5));
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(offset + 1), (uint)written);
            offset += 5 + written;
        }

        return bytes;
    }

    /// <summary>
    /// Format 2: <c>0xFF || u8(2) || u64(id) || i64(at) || u32(n) || n × (str(name) || str(value))</c> with
    /// <c>str(x) = u32(UTF-8 length of x) || UTF-8 bytes of x</c>: every attribute that has a value (the fixed fields
    /// under their JSON names, then any others), sorted by name (ordinal; names are ASCII), names unique.
    /// </summary>
    private static byte[] EncodeAttributes(long id, long at, AuditEntry entry)
    {
        SortedList<string, string> attributes = Attributes(entry);
        using var stream = new MemoryStream(128);
        Span<byte> number = stackalloc byte[8];
        stream.WriteByte(FormatMarker);
        stream.WriteByte(CurrentFormat);
        BinaryPrimitives.WriteInt64BigEndian(number, id);
        stream.Write(number);
        BinaryPrimitives.WriteInt64BigEndian(number, at);
        stream.Write(number);
        BinaryPrimitives.WriteUInt32BigEndian(number, (uint)attributes.Count);
        stream.Write(number[..4]);
        foreach ((string name, string value) in attributes)
        {
            WriteString(stream, name);
            WriteString(stream, value);
        }

        return stream.ToArray();
    }

    /// <summary>Every attribute of <paramref name="entry"/> that has a value, by name.</summary>
    public static SortedList<string, string> Attributes(AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var attributes = new SortedList<string, string>(StringComparer.Ordinal);
        string?[] values = [entry.Event, entry.Outcome, entry.Subject, entry.Issuer, entry.LicenceId, entry.ModelId, entry.Version, entry.KeyId, entry.Device, entry.Client];
        for (int i = 0; i < FixedNames.Length; i++)
        {
            if (values[i] is { } value)
            {
                attributes.Add(FixedNames[i], value);
            }
        }

        foreach ((string name, string value) in entry.Attributes ?? new Dictionary<string, string>())
        {
            if (!IsAttributeName(name) || Array.IndexOf(FixedNames, name) >= 0)
            {
                throw new ArgumentException($"'{name}' cannot name an audit attribute: 1 to {MaxAttributeNameLength} ASCII letters, digits, '.', '-' or '_', and not a fixed field's name.", nameof(entry));
            }

            attributes.Add(name, value);
        }

        return attributes;
    }

    /// <summary>1 to <see cref="MaxAttributeNameLength"/> ASCII letters, digits, '.', '-' or '_'.</summary>
    public static bool IsAttributeName(string name) =>
        name.Length is > 0 and <= MaxAttributeNameLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_');

    private static void WriteString(MemoryStream stream, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)bytes.Length);
        stream.Write(length);
        stream.Write(bytes);
    }

    /// <summary>
    /// Walks <paramref name="records"/> (in id order) and checks every link; stops at the first record that does not
    /// chain. With <paramref name="expectRecords"/> and <paramref name="expectHash"/> (a head kept from an earlier
    /// verification) it also checks that record number <paramref name="expectRecords"/> still has that hash, which
    /// detects records removed from the end. With <paramref name="checkpoint"/> (the latest signed checkpoint, whose
    /// signature the caller checks) it also checks that the log still holds the checkpointed record, with its hash, as
    /// its <see cref="AuditCheckpoint.Records"/>-th record: that detects records removed from the end before the
    /// checkpoint, and a log rewritten (records deleted, hashes recomputed) before it.
    /// </summary>
    public static AuditVerification Verify(IEnumerable<AuditRecord> records, long? expectRecords, byte[]? expectHash, AuditCheckpoint? checkpoint = null)
    {
        ArgumentNullException.ThrowIfNull(records);
        long count = 0;
        long? lastId = null;
        byte[] previous = Genesis;
        bool held = false;
        foreach (AuditRecord record in records)
        {
            if (checkpoint is not null && !held && record.Id > checkpoint.LastId)
            {
                return new AuditVerification(false, count, lastId, previous, record.Id, string.Create(CultureInfo.InvariantCulture, $"record {checkpoint.LastId}, which the latest signed checkpoint covers ({Describe(checkpoint)}), is missing: records were deleted."), checkpoint);
            }

            string? broken = record.Hash is null ? "it has no hash" : null;
            byte[]? expected = null;
            if (broken is null)
            {
                try
                {
                    expected = Link(previous, record.Id, record.At.ToUnixTimeSeconds(), record.Entry, record.Format);
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                {
                    broken = "it cannot be encoded: " + e.Message;
                }
            }

            if (broken is null && !CryptographicOperations.FixedTimeEquals(expected, record.Hash))
            {
                broken = lastId is { } before && record.Id != before + 1
                    ? string.Create(CultureInfo.InvariantCulture, $"its hash does not match, and the ids jump from {before} to {record.Id}: records were deleted")
                    : "its hash does not match: this record was altered, or a record before it was deleted, altered or moved";
            }

            if (broken is not null)
            {
                return new AuditVerification(false, count, lastId, previous, record.Id, string.Create(CultureInfo.InvariantCulture, $"record {record.Id} does not chain to the record before it: {broken}."), checkpoint);
            }

            count++;
            lastId = record.Id;
            previous = expected!;
            if (record.Id == checkpoint?.LastId)
            {
                if (count != checkpoint.Records || !expected.AsSpan().SequenceEqual(checkpoint.LastHash))
                {
                    return new AuditVerification(false, count, lastId, previous, record.Id, string.Create(CultureInfo.InvariantCulture, $"record {record.Id}, number {count} in the log, is not the record the latest signed checkpoint covers ({Describe(checkpoint)}): the log was rewritten before the checkpoint."), checkpoint);
                }

                held = true;
            }

            if (count == expectRecords && expectHash is not null && !expected.AsSpan().SequenceEqual(expectHash))
            {
                return new AuditVerification(false, count, lastId, previous, record.Id, string.Create(CultureInfo.InvariantCulture, $"record {record.Id}, number {count} in the log, does not have the expected head hash: the log was rewritten from there on or before."), checkpoint);
            }
        }

        if (checkpoint is not null && !held)
        {
            return new AuditVerification(false, count, lastId, previous, null, string.Create(CultureInfo.InvariantCulture, $"the log has {count} records and ends before the latest signed checkpoint ({Describe(checkpoint)}): records were removed from its end."), checkpoint);
        }

        if (count < expectRecords)
        {
            return new AuditVerification(false, count, lastId, previous, null, string.Create(CultureInfo.InvariantCulture, $"the log has {count} records where {expectRecords} were expected: records were removed from its end."), checkpoint, held);
        }

        return new AuditVerification(true, count, lastId, previous, null, null, checkpoint, held);
    }

    private static string Describe(AuditCheckpoint checkpoint) =>
        string.Create(CultureInfo.InvariantCulture, $"{checkpoint.Records} records up to record {checkpoint.LastId}, at {checkpoint.At.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}");
}
