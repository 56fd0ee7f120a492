using Trellis.Core.Errors;

namespace Trellis.Jobs.Firmware;

/// <summary>
/// Firmware images: bytes stored once per SHA-256 (content-addressed), names pointing at them.
/// <see cref="FileFirmwareStore"/> keeps the bytes in the data folder and the names in jobs.db.
/// </summary>
public interface IFirmwareStore
{
    /// <summary>
    /// Stores an image streamed from <paramref name="content"/> (never whole in memory). Refused,
    /// with nothing kept, when it is larger than <paramref name="maxBytes"/>, when its SHA-256 is not
    /// <paramref name="expectedSha256"/> (when given), or when the name is taken.
    /// </summary>
    Task<Result<FirmwareRecord>> AddAsync(string name, Stream content, string? expectedSha256, string? description, long maxBytes, CancellationToken cancellationToken);

    FirmwareRecord? Get(string name);

    IReadOnlyList<FirmwareRecord> List(string? after, int limit);

    /// <summary>Removes a name; the bytes go too when no other name points at them.</summary>
    bool Delete(string name);

    /// <summary>The file holding an image's bytes.</summary>
    string PathOf(FirmwareRecord firmware);

    /// <summary>Records an image's signature (base64 DER) and its signer's certificate; false when the name is unknown.</summary>
    bool SetSignature(string name, string signature, string signerCertificate);

    /// <summary>
    /// Makes and stores the patch from <paramref name="from"/>'s bytes to <paramref name="to"/>'s
    /// (replacing one made before); refused when either image is over <see cref="FirmwareDelta.MaxImageBytes"/>.
    /// </summary>
    Task<Result<FirmwareDeltaRecord>> AddDeltaAsync(FirmwareRecord from, FirmwareRecord to, CancellationToken cancellationToken);

    FirmwareDeltaRecord? GetDelta(string fromSha256, string toSha256);

    /// <summary>The patches stored towards the image whose SHA-256 is <paramref name="toSha256"/>.</summary>
    IReadOnlyList<FirmwareDeltaRecord> DeltasTo(string toSha256);

    /// <summary>The file holding a patch.</summary>
    string PathOf(FirmwareDeltaRecord delta);

    /// <summary>Stores a stream; with <paramref name="create"/>, false when the id is taken; without, false when it does not exist.</summary>
    bool SaveStream(StreamRecord stream, bool create);

    StreamRecord? GetStream(string streamId);

    IReadOnlyList<StreamRecord> ListStreams(string? after, int limit, bool ascending);

    bool DeleteStream(string streamId);
}
