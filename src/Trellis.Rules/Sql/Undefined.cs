namespace Trellis.Rules.Sql;

/// <summary>
/// AWS IoT SQL's Undefined: a missing field, or the result of an operation on values of the wrong
/// type. It is not null; a SELECT item that evaluates to it is left out of the output.
/// </summary>
public sealed class Undefined
{
    public static readonly Undefined Value = new();

    private Undefined()
    {
    }

    public override string ToString() => "Undefined";
}
