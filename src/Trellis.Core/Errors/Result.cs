namespace Trellis.Core.Errors;

/// <summary>A value or a <see cref="TrellisError"/>.</summary>
public readonly record struct Result<T>
{
    private Result(T? value, TrellisError? error)
    {
        Value = value;
        Error = error;
    }

    public T? Value { get; }

    public TrellisError? Error { get; }

    public bool IsSuccess => Error is null;

    public static implicit operator Result<T>(T value) => new(value, null);

    public static implicit operator Result<T>(TrellisError error) => new(default, error);
}
