using Microsoft.Data.Sqlite;

namespace Trellis.Storage;

/// <summary>The one way the SQLite-backed stores build a parameterised command (null becomes DBNull).</summary>
public static class SqliteCommands
{
    public static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }
}
