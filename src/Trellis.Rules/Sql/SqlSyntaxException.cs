namespace Trellis.Rules.Sql;

/// <summary>A rule's SQL could not be compiled: the message names the line and column.</summary>
public sealed class SqlSyntaxException : Exception
{
    public SqlSyntaxException()
    {
    }

    public SqlSyntaxException(string message)
        : base(message)
    {
    }

    public SqlSyntaxException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public SqlSyntaxException(string message, int line, int column)
        : base($"{message} (line {line}, column {column})")
    {
        Line = line;
        Column = column;
    }

    public int Line { get; }

    public int Column { get; }
}
