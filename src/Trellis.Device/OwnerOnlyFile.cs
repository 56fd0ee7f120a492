using System.Text;

namespace Trellis.Device;

/// <summary>
/// Writes a file readable by its owner only (0600) from its first byte (a private key, an API key's
/// secret, a device token): the file is made with that mode under a temporary name, then moved over
/// any file already there, never written under the process's umask and narrowed afterwards, when
/// another local user could have opened it in between. The server's assemblies that write such files
/// (Trellis.Security, Trellis.Registry) compile this source too, as their own internal class: the
/// device SDK depends on no server assembly, and they do not depend on the SDK.
/// </summary>
internal static class OwnerOnlyFile
{
    public static void Write(string path, string text)
    {
        var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(Encoding.UTF8.GetBytes(text));
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }
}
