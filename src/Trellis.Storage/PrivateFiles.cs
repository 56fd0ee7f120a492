using System.Runtime.InteropServices;

namespace Trellis.Storage;

/// <summary>
/// Sets the process's file-creation mask to 077, so that every file the server creates (SQLite
/// databases and their WAL and shared-memory files, DuckDB's files, keys, exports) is readable
/// by the server's user only, whichever library creates it.
/// </summary>
public static class PrivateFiles
{
    public static void Apply()
    {
        if (!OperatingSystem.IsWindows())
        {
            _ = Umask(0b000_111_111);
        }
    }

    [DllImport("libc", EntryPoint = "umask")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
#pragma warning disable SYSLIB1054 // LibraryImport would need unsafe code for one call at start-up
    private static extern uint Umask(uint mask);
#pragma warning restore SYSLIB1054
}
