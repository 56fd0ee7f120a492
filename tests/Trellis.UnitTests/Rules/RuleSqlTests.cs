using System.Text;
using System.Text.Json.Nodes;
using Trellis.Rules.Sql;

namespace Trellis.UnitTests.Rules;

public sealed class RuleSqlTests
{
    private static RuleContext Message(string topic, string payload, string? clientId = "dev-1") => new()
    {
        Topic = topic,
        Payload = RuleContext.ParsePayload(Encoding.UTF8.GetBytes(payload)),
        RawPayload = Encoding.UTF8.GetBytes(payload),
        ClientId = clientId,
        Principal = "abc123",
        TimestampMs = 1_700_000_000_123,
    };

    private static JsonObject Run(string sql, string topic, string payload) =>
        Assert.IsType<JsonObject>(CompiledSql.Compile(sql).Evaluate(Message(topic, payload)));

    [Fact]
    public void Select_projects_paths_indexes_aliases_arithmetic_and_case()
    {
        var output = Run(
            """
            SELECT *, state.reported.temp * 1.8 + 32 AS fahrenheit, readings[1] AS second, device.id,
                   CASE WHEN state.reported.temp > 30 THEN 'hot' WHEN state.reported.temp > 15 THEN 'mild' ELSE 'cold' END AS feel,
                   CASE status WHEN 1 THEN 'on' ELSE 'off' END AS power, 7 / 2 AS halves, 7.0 / 2 AS exact, -state.reported.temp AS negative
            FROM 'dt/+/telemetry'
            """,
            "dt/plant-1/telemetry",
            """{"state":{"reported":{"temp":25}},"readings":[3,4,5],"device":{"id":"d-9"},"status":1}""");
        Assert.Equal(77.0, output["fahrenheit"]!.GetValue<double>());
        Assert.Equal(4, output["second"]!.GetValue<long>());
        Assert.Equal("d-9", output["id"]!.GetValue<string>());
        Assert.Equal("mild", output["feel"]!.GetValue<string>());
        Assert.Equal("on", output["power"]!.GetValue<string>());
        Assert.Equal(3, output["halves"]!.GetValue<long>());
        Assert.Equal(3.5, output["exact"]!.GetValue<double>());
        Assert.Equal(-25, output["negative"]!.GetValue<long>());
        Assert.NotNull(output["readings"]);
    }

    [Fact]
    public void Where_filters_and_undefined_values_are_left_out()
    {
        var rule = CompiledSql.Compile("SELECT temp, missing.field AS gone, temp + 'abc' AS mismatch FROM 'sensors/#' WHERE temp > 20 AND NOT isUndefined(temp)");
        Assert.Null(rule.Evaluate(Message("sensors/a", """{"temp":10}""")));
        Assert.Null(rule.Evaluate(Message("sensors/a", """{"other":10}""")));
        var output = Assert.IsType<JsonObject>(rule.Evaluate(Message("sensors/a", """{"temp":30}""")));
        Assert.Equal(["temp"], output.Select(p => p.Key));
        Assert.Equal("sensors/#", rule.TopicFilter);
    }

    [Fact]
    public void Functions_about_the_message_and_on_values()
    {
        var output = Run(
            """
            SELECT topic() AS t, topic(2) AS device, clientid() AS c, timestamp() AS ts, principal() AS p, newuuid() AS id,
                   abs(-3) AS a, round(2.5) AS r, floor(2.7) AS f, ceil(2.1) AS ce, power(2, 10) AS pw, sqrt(16) AS sq,
                   cast(n AS String) AS ns, cast('42' AS Int) AS ni, cast(s AS Decimal) AS sd, cast('true' AS Bool) AS b,
                   concat('a', 'b', 1) AS cc, lower('ABC') AS lo, upper(name) AS up, substring(name, 1, 3) AS sub, length(name) AS len,
                   startswith(name, 'sen') AS sw, endswith(name, 'or') AS ew, regexp_matches(name, '^s.n') AS rm,
                   regexp_replace(name, '[aeiou]', '*') AS rr, isNull(nothing) AS isn, isUndefined(nope) AS isu,
                   encode(name, 'base64') AS enc, decode('eyJrIjoxfQ==', 'base64').k AS dec, get(list, 1) AS g, get(obj, 'x') AS go,
                   parse_time('yyyy-MM-dd HH:mm:ss', 0) AS pt, mod(7, 3) AS md
            FROM 'a/+/c'
            """,
            "a/dev-7/c",
            """{"n":12,"s":"2.5","name":"sensor","nothing":null,"list":["x","y"],"obj":{"x":5}}""");
        Assert.Equal("a/dev-7/c", output["t"]!.GetValue<string>());
        Assert.Equal("dev-7", output["device"]!.GetValue<string>());
        Assert.Equal("dev-1", output["c"]!.GetValue<string>());
        Assert.Equal(1_700_000_000_123, output["ts"]!.GetValue<long>());
        Assert.Equal("abc123", output["p"]!.GetValue<string>());
        Assert.True(Guid.TryParse(output["id"]!.GetValue<string>(), out _));
        Assert.Equal(3, output["a"]!.GetValue<long>());
        Assert.Equal(3, output["r"]!.GetValue<long>());
        Assert.Equal(2, output["f"]!.GetValue<long>());
        Assert.Equal(3, output["ce"]!.GetValue<long>());
        Assert.Equal(1024.0, output["pw"]!.GetValue<double>());
        Assert.Equal(4.0, output["sq"]!.GetValue<double>());
        Assert.Equal("12", output["ns"]!.GetValue<string>());
        Assert.Equal(42, output["ni"]!.GetValue<long>());
        Assert.Equal(2.5, output["sd"]!.GetValue<double>());
        Assert.True(output["b"]!.GetValue<bool>());
        Assert.Equal("ab1", output["cc"]!.GetValue<string>());
        Assert.Equal("abc", output["lo"]!.GetValue<string>());
        Assert.Equal("SENSOR", output["up"]!.GetValue<string>());
        Assert.Equal("en", output["sub"]!.GetValue<string>());
        Assert.Equal(6, output["len"]!.GetValue<long>());
        Assert.True(output["sw"]!.GetValue<bool>());
        Assert.True(output["ew"]!.GetValue<bool>());
        Assert.True(output["rm"]!.GetValue<bool>());
        Assert.Equal("s*ns*r", output["rr"]!.GetValue<string>());
        Assert.True(output["isn"]!.GetValue<bool>());
        Assert.True(output["isu"]!.GetValue<bool>());
        Assert.Equal("c2Vuc29y", output["enc"]!.GetValue<string>());
        Assert.Equal(1, output["dec"]!.GetValue<long>());
        Assert.Equal("y", output["g"]!.GetValue<string>());
        Assert.Equal(5, output["go"]!.GetValue<long>());
        Assert.Equal("1970-01-01 00:00:00", output["pt"]!.GetValue<string>());
        Assert.Equal(1, output["md"]!.GetValue<long>());
    }

    [Fact]
    public void A_payload_that_is_not_json_passes_through_select_star_and_encodes_as_base64()
    {
        var bytes = new byte[] { 0xff, 0x00, 0x10 };
        var context = new RuleContext { Topic = "bin/x", Payload = RuleContext.ParsePayload(bytes), RawPayload = bytes, TimestampMs = 1 };
        Assert.Equal(bytes, CompiledSql.Compile("SELECT * FROM 'bin/#'").Evaluate(context));
        var encoded = Assert.IsType<JsonObject>(CompiledSql.Compile("SELECT encode(*, 'base64') AS data, temp FROM 'bin/#'").Evaluate(context));
        Assert.Equal("/wAQ", encoded["data"]!.GetValue<string>());
        Assert.Null(encoded["temp"]);
        Assert.Equal("n/a", CompiledSql.Compile("SELECT VALUE clientid() FROM '#'").Evaluate(context) is JsonValue v ? v.GetValue<string>() : null);
    }

    [Theory]
    [InlineData("SELECT * FROM sensors", 1, 15, "expected a topic filter in single quotes")]
    [InlineData("SELECT temp FROM 'a/b'\nWHERE temp >", 2, 13, "expected an expression")]
    [InlineData("SELECT nosuch(temp) FROM 'a'", 1, 8, "unknown function 'nosuch'")]
    [InlineData("SELECT abs(1, 2) FROM 'a'", 1, 8, "abs() takes 1 argument(s), not 2")]
    [InlineData("SELECT temp FROM 'a/#/b'", 1, 19, "not a valid topic filter")]
    [InlineData("SELECT 'open FROM 'a'", 1, 21, "unterminated string")]
    [InlineData("SELECT cast(a AS Blob) FROM 'a'", 1, 8, "unknown type 'Blob'")]
    [InlineData("SELECT regexp_matches(a, '(') FROM 'a'", 1, 26, "not a valid regular expression")]
    [InlineData("SELECT a FROM 'a' WHERE a = 1 ORDER", 1, 31, "unexpected 'ORDER'")]
    [InlineData("SELECT a ; FROM 'a'", 1, 10, "unexpected character ';'")]
    [InlineData("SELECT (SELECT v FROM 'e') AS x FROM 'a'", 1, 23, "an array of the message after FROM in a nested query")]
    [InlineData("SELECT (SELECT v FROM e WHERE v > 1 AS x FROM 'a'", 1, 37, "expected ')'")]
    public void Mistakes_are_reported_with_line_and_column(string sql, int line, int column, string message)
    {
        var error = Assert.Throws<SqlSyntaxException>(() => CompiledSql.Compile(sql));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal((line, column), (error.Line, error.Column));
    }

    private const string SenMl = """
        {"e": [{"n": "temperature", "u": "Cel", "t": 1234, "v": 22.5},
               {"n": "light", "u": "lm", "t": 1235, "v": 135},
               {"n": "acidity", "u": "pH", "t": 1235, "v": 7}],
         "site": {"name": "lyon"}, "count": 3}
        """;

    [Fact]
    public void Nested_queries_select_from_arrays_inside_the_message()
    {
        var output = Run(
            """
            SELECT (SELECT VALUE n FROM e) AS sensors,
                   (SELECT v FROM e WHERE n = 'temperature') AS temperature,
                   get((SELECT v FROM e WHERE n = 'temperature'), 0).v AS flat,
                   (SELECT n, v * 2 AS twice, topic(2) AS device FROM e WHERE v > 10) AS big,
                   (SELECT VALUE name FROM site) AS names,
                   (SELECT VALUE n FROM e WHERE u = 'none') AS nothing,
                   (SELECT VALUE n FROM count) AS scalar
            FROM 'dt/+/senml'
            """,
            "dt/dev-4/senml",
            SenMl);
        Assert.Equal("""["temperature","light","acidity"]""", output["sensors"]!.ToJsonString());
        Assert.Equal("""[{"v":22.5}]""", output["temperature"]!.ToJsonString());
        Assert.Equal(22.5, output["flat"]!.GetValue<double>());
        Assert.Equal("""[{"n":"temperature","twice":45,"device":"dev-4"},{"n":"light","twice":270,"device":"dev-4"}]""", output["big"]!.ToJsonString());
        Assert.Equal("""["lyon"]""", output["names"]!.ToJsonString());
        Assert.Equal("[]", output["nothing"]!.ToJsonString());
        Assert.False(output.ContainsKey("scalar")); // FROM a number: Undefined, left out
    }

    [Fact]
    public void A_nested_query_works_in_where_and_value()
    {
        var rule = CompiledSql.Compile("SELECT VALUE (SELECT VALUE v FROM e WHERE u = 'Cel') FROM 'dt/#' WHERE get((SELECT VALUE v FROM e WHERE n = 'light'), 0) > 100");
        Assert.Equal("[22.5]", Assert.IsAssignableFrom<JsonNode>(rule.Evaluate(Message("dt/x", SenMl))).ToJsonString());
        Assert.Null(rule.Evaluate(Message("dt/x", SenMl.Replace("135", "99", StringComparison.Ordinal))));
    }

    [Fact]
    public void Substitution_templates_evaluate_against_the_message()
    {
        var template = CompiledSql.CompileTemplateExpression("topic(2)");
        Assert.Equal("dev-7", template(Message("a/dev-7/c", "{}")));
        Assert.Null(CompiledSql.CompileTemplateExpression("missing")(Message("a/dev-7/c", "{}")));
    }
}
