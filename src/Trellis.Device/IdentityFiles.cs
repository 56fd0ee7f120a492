namespace Trellis.Device;

/// <summary>The files of a device identity on disk (a `trellis provision` folder, a gateway's identity and its leaves, the simulator's devices).</summary>
public static class IdentityFiles
{
    /// <summary>
    /// Writes a file readable by its owner only (0600) from its first byte (a private key, a gateway's
    /// leaf passwords): the file is made with that mode, then moved over any file already there,
    /// never written under the process's umask and narrowed afterwards, when another local user
    /// could have opened it in between.
    /// </summary>
    public static void WritePrivate(string path, string text) => OwnerOnlyFile.Write(path, text);
}
