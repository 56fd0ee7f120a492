namespace Trellis.Rules.Sql;

/// <summary>An expression of the rule SQL, with where it starts in the text.</summary>
internal abstract record Expr(int Line, int Column);

internal sealed record LiteralExpr(object? Value, int Line, int Column) : Expr(Line, Column);

/// <summary><c>*</c>: the whole payload.</summary>
internal sealed record StarExpr(int Line, int Column) : Expr(Line, Column);

/// <summary>A top-level payload field.</summary>
internal sealed record FieldExpr(string Name, int Line, int Column) : Expr(Line, Column);

internal sealed record MemberExpr(Expr Target, string Name, int Line, int Column) : Expr(Line, Column);

internal sealed record IndexExpr(Expr Target, Expr Index, int Line, int Column) : Expr(Line, Column);

internal sealed record UnaryExpr(string Operator, Expr Operand, int Line, int Column) : Expr(Line, Column);

internal sealed record BinaryExpr(string Operator, Expr Left, Expr Right, int Line, int Column) : Expr(Line, Column);

internal sealed record CallExpr(string Name, IReadOnlyList<Expr> Arguments, int Line, int Column) : Expr(Line, Column);

internal sealed record CastExpr(Expr Value, string Type, int Line, int Column) : Expr(Line, Column);

internal sealed record CaseExpr(Expr? Subject, IReadOnlyList<(Expr When, Expr Then)> Branches, Expr? Else, int Line, int Column) : Expr(Line, Column);

/// <summary>A nested query, <c>(SELECT … FROM arrayExpr [WHERE …])</c>: the array of its results for each element.</summary>
internal sealed record SubqueryExpr(IReadOnlyList<SelectItem> Items, Expr? Value, Expr Source, Expr? Where, int Line, int Column) : Expr(Line, Column);

internal sealed record SelectItem(Expr Expression, string? Alias);

internal sealed record SqlStatement(IReadOnlyList<SelectItem> Items, Expr? Value, string Topic, Expr? Where);
