#!/usr/bin/env python3
"""Generates the AWS-compatible API surface of Trellis from botocore's service models.

Run by hand when a model changes or an operation is implemented; the output is committed:

    python3 scripts/generate-aws-api.py

Reads the `iot`, `iot-data` and `iot-jobs-data` models installed with boto3 (botocore/data/<service>/
<version>/service-2.json.gz) and writes, into src/Trellis.Api/Aws/Generated/:

- <Service>.Routes.g.cs: every operation of the model (method, URI template, success code, signing
  name, whether Trellis implements it) and every error shape with its HTTP status;
- <Service>.Shapes.g.cs: a record per input and output shape of the implemented operations (and the
  structures they contain), each input with a binder that reads its members from where the model puts
  them (URI, query string, headers, body) and checks what the model requires (required members, enum
  values, lengths, ranges, patterns), each output with a writer that puts its members where they go;
- <Service>.Operations.g.cs: the interface a handler class implements (one method per implemented
  operation, typed request in, typed response out) and the invokers the dispatcher calls.

The implemented operations are listed in src/Trellis.Api/Aws/operations.txt, one "<service> <Operation>"
per line. docs/api.md's coverage table is written from the same route table (between its
"aws-coverage" markers).
"""
import glob
import gzip
import json
import os
import re
import sys

import botocore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "Trellis.Api", "Aws", "Generated")
LIST = os.path.join(ROOT, "src", "Trellis.Api", "Aws", "operations.txt")
API_DOC = os.path.join(ROOT, "docs", "api.md")
SERVICES = [("iot", "Iot"), ("iot-data", "IotData"), ("iot-jobs-data", "IotJobsData")]
DATA = os.path.join(os.path.dirname(botocore.__file__), "data")


def load(service):
    path = sorted(glob.glob(os.path.join(DATA, service, "*", "service-2.json*")))[-1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f), os.path.relpath(path, DATA)


def pascal(name):
    return name[0].upper() + name[1:]


# Java's POSIX classes (ASCII in Java), which .NET's regular expressions do not know, as ranges.
POSIX = {"Graph": r"\x21-\x7E", "Print": r"\x20-\x7E", "Upper": "A-Z", "Lower": "a-z", "Alpha": "a-zA-Z", "Digit": "0-9",
         "Alnum": "a-zA-Z0-9", "Punct": r"!-/:-@\[-`{-~", "Cntrl": r"\x00-\x1F\x7F", "Space": r"\t\n\x0B\f\r\x20",
         "XDigit": "0-9a-fA-F", "Blank": r"\t\x20", "ASCII": r"\x00-\x7F"}


def dotnet_pattern(pattern):
    """A model pattern (Java syntax) as a .NET one: \\p{Graph} and its kin become ranges, in a class or as one."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            m = re.match(r"\\p\{(\w+)\}", pattern[i:])
            if m and m.group(1) in POSIX:
                ranges = POSIX[m.group(1)]
                out.append(ranges if in_class else "[" + ranges + "]")
                i += len(m.group(0))
                continue
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


# The model's scalar types: the C# type, whether it is a value type, and the suffix of the reader's
# Read<Name> (JSON) and Parse<Name> (URI, query string, header) methods.
SCALARS = {"string": ("string", False, "String"), "integer": ("int", True, "Int"), "long": ("long", True, "Long"),
           "double": ("double", True, "Double"), "float": ("double", True, "Double"), "boolean": ("bool", True, "Bool"),
           "timestamp": ("DateTimeOffset", True, "Timestamp"), "blob": ("byte[]", False, "Blob")}


# Structures that travel as JSON documents (System.Text.Json.Nodes.JsonObject) instead of records:
# a rule's Action is a union of two dozen AWS targets, of which Trellis serves a few and adds its own
# (nats). The rules engine checks each action it is given in full and refuses the ones it does not
# serve with a message naming them; a typed union would only drop Trellis's own members on the way.
DOCUMENTS = {"iot": {"Action"}}

# Output shapes in which AWS's model gives one resource's members more than once. The generator
# declares an interface over the members they all share (same name and type, in the first shape's
# order) and puts it on each, so a handler fills those members in one place (the *View<T> helpers
# of Aws/IotOperations.*.cs) and the shared set follows the model when it changes.
VIEWS = {"iot": {
    "ICertificateView": ("a device certificate's and a CA certificate's descriptions", ["CertificateDescription", "CACertificateDescription"]),
    "IJobView": ("DescribeJob's job and ListJobs' summaries", ["Job", "JobSummary"]),
    "IProvisioningTemplateView": ("DescribeProvisioningTemplate and ListProvisioningTemplates' summaries", ["DescribeProvisioningTemplateResponse", "ProvisioningTemplateSummary"]),
    "ISecurityProfileView": ("DescribeSecurityProfile and UpdateSecurityProfile", ["DescribeSecurityProfileResponse", "UpdateSecurityProfileResponse"]),
    "IViolationView": ("an active violation and a violation event", ["ActiveViolation", "ViolationEvent"]),
    "IStreamView": ("CreateStream, UpdateStream, DescribeStream's stream info and ListStreams' summaries", ["StreamInfo", "StreamSummary", "CreateStreamResponse", "UpdateStreamResponse"]),
    "IPolicyView": ("GetPolicy and GetPolicyVersion", ["GetPolicyResponse", "GetPolicyVersionResponse"]),
    "IThingView": ("CreateThing and DescribeThing", ["CreateThingResponse", "DescribeThingResponse"]),
}}


def cs_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def verbatim(s):
    return '@"' + s.replace('"', '""') + '"'


class Gen:
    def __init__(self, service, cs_name, model, source):
        self.service = service
        self.cs = cs_name
        self.model = model
        self.shapes = model["shapes"]
        self.source = source
        self.ns = f"Trellis.Api.Aws.{cs_name}"
        self.structs = []      # structure shapes to emit, in order
        self.inputs = set()    # structures read from a request
        self.outputs = set()   # structures written to a response
        self.patterns = {}     # pattern -> field name
        self.documents = DOCUMENTS.get(service, set())
        self.views = VIEWS.get(service, {})

    # ---- types -------------------------------------------------------------------------------
    def cs_type(self, shape_name, nullable=True):
        s = self.shapes[shape_name]
        t = s["type"]
        q = "?" if nullable else ""
        if t in SCALARS:
            return SCALARS[t][0] + q
        if t == "list":
            return f"IReadOnlyList<{self.cs_type(s['member']['shape'], False)}>" + q
        if t == "map":
            value = self.shapes[s["value"]["shape"]]
            inner = self.cs_type(s["value"]["shape"], value["type"] == "string")
            return f"IReadOnlyDictionary<string, {inner}>" + q
        if t == "structure":
            return ("JsonObject" if shape_name in self.documents else pascal(shape_name)) + q
        raise ValueError(f"unsupported type {t} ({shape_name})")

    def scalar(self, shape_name):
        t = self.shapes[shape_name]["type"]
        if t not in SCALARS or t == "blob":
            raise ValueError(f"{shape_name}: a {t} cannot travel in a URI, query string or header")
        return SCALARS[t][2]

    def parse(self, shape_name, raw, member):
        kind = self.scalar(shape_name)
        return raw if kind == "String" else f"r.Parse{kind}({raw}, {cs_string(member)})"

    def collect(self, shape_name, direction):
        s = self.shapes[shape_name]
        t = s["type"]
        if t == "structure" and shape_name in self.documents:
            return
        if t == "structure":
            target = self.inputs if direction == "in" else self.outputs
            if shape_name in target:
                return
            target.add(shape_name)
            if shape_name not in self.structs:
                self.structs.append(shape_name)
            for m in s.get("members", {}).values():
                self.collect(m["shape"], direction)
        elif t == "list":
            self.collect(s["member"]["shape"], direction)
        elif t == "map":
            self.collect(s["value"]["shape"], direction)

    def pattern_field(self, pattern):
        if pattern not in self.patterns:
            self.patterns[pattern] = f"Pattern{len(self.patterns)}"
        return self.patterns[pattern]

    # ---- reading -----------------------------------------------------------------------------
    def read_expr(self, shape_name, elem, path):
        """A C# expression reading a JSON element of this shape (path: C# string expression)."""
        s = self.shapes[shape_name]
        t = s["type"]
        if t in SCALARS:
            return f"r.Read{SCALARS[t][2]}({elem}, {path})"
        if t == "list":
            item = s["member"]["shape"]
            return f"r.ReadList({elem}, {path}, static (r, e, p) => {self.read_expr(item, 'e', 'p')}{self.bang(item)})"
        if t == "map":
            value = s["value"]["shape"]
            nullable = self.shapes[value]["type"] == "string"
            reader = self.read_expr(value, "e", "p") + ("" if nullable else self.bang(value))
            return f"r.ReadMap({elem}, {path}, static (r, e, p) => {reader})"
        if t == "structure" and shape_name in self.documents:
            return f"r.ReadDocument({elem}, {path})"
        if t == "structure":
            return f"r.ReadObject({elem}, {path}, static (r, e, p) => {pascal(shape_name)}.Read(r, e, p))"
        raise ValueError(t)

    def bang(self, shape_name):
        """Non-null list items: a null item was reported by the reader; the default stands in for it."""
        t = self.shapes[shape_name]["type"]
        return " ?? default" if t in SCALARS and SCALARS[t][1] else "!"

    def checks(self, shape_name, value, path, out, indent):
        """Validation statements for a value of this shape (value: C# expression, may be null)."""
        s = self.shapes[shape_name]
        t = s["type"]
        pad = " " * indent
        if t == "string":
            if "min" in s or "max" in s:
                out.append(f"{pad}r.Length({value}, {path}, {s.get('min', 0)}, {s.get('max', 'int.MaxValue')});")
            if "enum" in s:
                out.append(f"{pad}r.Enum({value}, {path}, [{', '.join(cs_string(e) for e in s['enum'])}]);")
            if "pattern" in s:
                out.append(f"{pad}r.Pattern({value}, {path}, {self.pattern_field(s['pattern'])});")
        elif t in ("integer", "long", "double", "float"):
            if "min" in s or "max" in s:
                lo = s.get("min", "double.MinValue")
                hi = s.get("max", "double.MaxValue")
                out.append(f"{pad}r.Range({value}, {path}, {lo}, {hi});")
        elif t in ("list", "map"):
            if "min" in s or "max" in s:
                out.append(f"{pad}r.Count({value}?.Count, {path}, {s.get('min', 0)}, {s.get('max', 'int.MaxValue')});")
            inner = s["member"]["shape"] if t == "list" else s["value"]["shape"]
            sub = []
            item_path = f'{path} + "[" + i + "]"' if t == "list" else f'{path} + "." + kv.Key'
            item_value = f"{value}![i]" if t == "list" else "kv.Value"
            self.checks(inner, item_value, item_path, sub, indent + 4)
            if sub:
                if t == "list":
                    out.append(f"{pad}for (var i = 0; i < ({value}?.Count ?? 0); i++)")
                else:
                    out.append(f"{pad}foreach (var kv in {value} ?? System.Collections.Immutable.ImmutableDictionary<string, {self.cs_type(inner, self.shapes[inner]['type'] == 'string')}>.Empty)")
                out.append(f"{pad}{{")
                out.extend(sub)
                out.append(f"{pad}}}")

    # ---- emitting ----------------------------------------------------------------------------
    def header(self):
        md = self.model["metadata"]
        return [
            "// <auto-generated>",
            f"// Generated by scripts/generate-aws-api.py from botocore {botocore.__version__}, model {self.source}",
            f"// ({md.get('serviceFullName')}, API version {md['apiVersion']}). Do not edit: change the generator or",
            "// src/Trellis.Api/Aws/operations.txt and run it again.",
            "// </auto-generated>",
            "#nullable enable",
            "#pragma warning disable CS1591, CA1707, CA1819, CA1034, CA1062, CA2227, IDE0005, IDE0055, IDE0130, IDE0300, IDE0301, IDE0028, IDE0090, IDE0161",
            "",
        ]

    def routes(self, implemented):
        md = self.model["metadata"]
        lines = self.header() + [
            "namespace Trellis.Api.Aws;",
            "",
            "public static partial class AwsModel",
            "{",
            f"    /// <summary>Every operation of the {md.get('serviceFullName')} model ({self.source}).</summary>",
            f"    public static readonly AwsRoute[] {self.cs}Routes =",
            "    [",
        ]
        for name in sorted(self.model["operations"]):
            op = self.model["operations"][name]
            http = op["http"]
            code = http.get("responseCode", 200)
            impl = "true" if name in implemented else "false"
            lines.append(f"        new({cs_string(self.service)}, {cs_string(md['signingName'])}, {cs_string(name)}, {cs_string(http['method'])}, {cs_string(http['requestUri'])}, {code}, {impl}),")
        lines += ["    ];", "", f"    /// <summary>The error shapes of the model and their HTTP statuses.</summary>",
                  f"    public static readonly IReadOnlyDictionary<string, int> {self.cs}Errors = new Dictionary<string, int>(StringComparer.Ordinal)", "    {"]
        for name in sorted(self.shapes):
            s = self.shapes[name]
            if s.get("exception"):
                lines.append(f"        [{cs_string(name)}] = {s.get('error', {}).get('httpStatusCode', 500)},")
        lines += ["    };", "}", ""]
        return lines

    def shapes_file(self, implemented):
        for name in sorted(implemented):
            op = self.model["operations"][name]
            if "input" in op:
                self.collect(op["input"]["shape"], "in")
            if "output" in op:
                self.collect(op["output"]["shape"], "out")
        lines = self.header() + [
            "using System.Text.Json;",
            "using System.Text.Json.Nodes;",
            "using System.Text.RegularExpressions;",
            "",
            f"namespace {self.ns};",
            "",
        ]
        body = []
        for name in self.structs:
            body += self.struct(name)
        lines += body
        for view in sorted(self.views):
            lines += self.view(view)
        lines += [f"/// <summary>The model's patterns, anchored, each compiled on first use (one that failed would fail only its own operations).</summary>",
                  f"internal static class {self.cs}Patterns", "{"]
        for pattern, field in self.patterns.items():
            lines.append(f"    private static Regex? s_{field[0].lower()}{field[1:]};")
            lines.append("")
            lines.append(f"    /// <summary><c>{pattern.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</c></summary>")
            lines.append(f"    internal static Regex {field} => s_{field[0].lower()}{field[1:]} ??= new({verbatim('^(?:' + dotnet_pattern(pattern) + ')$')}, RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));")
            lines.append("")
        if lines[-1] == "":
            lines.pop()
        lines += ["}", ""]
        return lines

    def struct(self, name):
        s = self.shapes[name]
        cls = pascal(name)
        required = set(s.get("required", []))
        members = s.get("members", {})
        views = [v for v, (_, shapes) in sorted(self.views.items()) if name in shapes]
        out = [f"/// <summary>The <c>{name}</c> shape.</summary>", f"public sealed partial record {cls}" + (" : " + ", ".join(views) if views else ""), "{"]
        for mname, m in members.items():
            # A required member of reference type is non-nullable for the handler: Bind refuses a request without it.
            reference = self.shapes[m["shape"]]["type"] in ("string", "blob", "list", "map", "structure")
            is_required = mname in required and name in self.inputs and reference
            ctype = self.cs_type(m["shape"], not is_required)
            loc = m.get("location", "payload" if s.get("payload") == mname else "body")
            where = f"{loc} <c>{m.get('locationName', mname)}</c>"
            req = ", required" if mname in required else ""
            out.append(f"    /// <summary>{mname} ({where}{req}).</summary>")
            out.append(f"    public {ctype} {pascal(mname)} {{ get; init; }}" + (" = null!;" if is_required else ""))
            out.append("")
        if out[-1] == "":
            out.pop()
        if name in self.inputs:
            out += ([""] if members else []) + self.binder(name)
        if name in self.outputs:
            out += ([""] if members or name in self.inputs else []) + self.writer(name)
        out += ["}", ""]
        return out

    def view(self, view):
        what, shapes = self.views[view]
        missing = [n for n in shapes if n not in self.structs]
        if missing:
            sys.exit(f"VIEWS: {view} names {', '.join(missing)}, which no implemented operation uses")
        first = self.shapes[shapes[0]].get("members", {})
        shared = [m for m in first if all(m in self.shapes[n].get("members", {}) and self.cs_type(self.shapes[n]["members"][m]["shape"]) == self.cs_type(first[m]["shape"]) for n in shapes)]
        out = [f"/// <summary>The members {what} share ({', '.join(f'<c>{n}</c>' for n in shapes)}).</summary>", f"public interface {view}", "{"]
        for m in shared:
            out += [f"    /// <summary>{m}.</summary>", f"    {self.cs_type(first[m]['shape'])} {pascal(m)} {{ get; init; }}", ""]
        out[-1:] = ["}", ""]
        return out

    def binder(self, name):
        s = self.shapes[name]
        cls = pascal(name)
        members = s.get("members", {})
        required = s.get("required", [])
        top = any(op.get("input", {}).get("shape") == name for op in self.model["operations"].values())
        lines = []
        pattern_host = f"{self.cs}Patterns"
        if top:
            lines += [f"    /// <summary>Binds the request from its URI, query string, headers and body, and checks it against the model.</summary>",
                      f"    internal static {cls} Bind(AwsRequestReader r)", "    {", "        var body = r.Body;", f"        var value = new {cls}", "        {"]
            for mname, m in members.items():
                loc = m.get("location")
                lname = m.get("locationName", mname)
                shape = self.shapes[m["shape"]]
                if loc == "uri":
                    expr = self.parse(m["shape"], f"r.Uri({cs_string(lname)})", mname)
                elif loc == "querystring":
                    if shape["type"] == "list":
                        if self.shapes[shape["member"]["shape"]]["type"] != "string":
                            raise ValueError(f"{name}.{mname}: only lists of strings are read from the query string")
                        expr = f"r.QueryStrings({cs_string(lname)})"
                    elif shape["type"] == "map":
                        expr = "r.QueryMap()"
                    else:
                        expr = self.parse(m["shape"], f"r.Query({cs_string(lname)})", mname)
                elif loc == "header":
                    expr = self.parse(m["shape"], f"r.Header({cs_string(lname)})", mname)
                elif loc == "headers":
                    expr = f"r.Headers({cs_string(lname)})"
                elif s.get("payload") == mname:
                    if shape["type"] == "blob":
                        expr = "r.RawBody()"
                    else:
                        expr = self.read_expr(m["shape"], "body", cs_string(mname)) if shape["type"] != "structure" else f"r.ReadObject(body, \"\", static (r, e, p) => {pascal(m['shape'])}.Read(r, e, p))"
                else:
                    expr = self.read_expr(m["shape"], f"AwsRequestReader.Member(body, {cs_string(mname)})", cs_string(mname))
                reference = shape["type"] in ("string", "blob", "list", "map", "structure")
                lines.append(f"            {pascal(mname)} = {expr}{'!' if mname in required and reference else ''},")
            lines += ["        };"]
            lines += [f"        value.Check(r, \"\");"]
            # The audit log's target: the names, ARNs and ids the request acts on, wherever they travel.
            for mname, m in members.items():
                shape = self.shapes[m["shape"]]
                if shape["type"] == "string" and (m.get("location") in ("uri", "header") or re.search(r"(Name|Arn|Id)$|^(target|principal)$", mname)):
                    lines.append(f"        r.Target({cs_string(mname)}, value.{pascal(mname)});")
            lines += ["        return value;", "    }", ""]
        # nested reading (also used for top-level payload structures)
        if top and not any(not m.get("location") for m in members.values()):
            lines += ["    /// <summary>Checks the members against the model: required, enum, length, range, pattern.</summary>",
                      "    internal void Check(AwsRequestReader r, string p)", "    {"]
            lines += self.check_lines(name, required, members)
            lines += ["    }"]
            return [l.replace(", Pattern", f", {pattern_host}.Pattern") for l in lines]
        lines += [f"    internal static {cls} Read(AwsRequestReader r, JsonElement e, string p) => new()", "    {"]
        for mname, m in members.items():
            if m.get("location"):
                continue
            key = m.get("locationName", mname)
            reference = self.shapes[m["shape"]]["type"] in ("string", "blob", "list", "map", "structure")
            bang = "!" if mname in required and reference else ""
            lines.append(f"        {pascal(mname)} = {self.read_expr(m['shape'], f'AwsRequestReader.Member(e, {cs_string(key)})', f'AwsRequestReader.Path(p, {cs_string(mname)})')}{bang},")
        lines += ["    };", ""]
        # checks
        lines += ["    /// <summary>Checks the members against the model: required, enum, length, range, pattern.</summary>",
                  "    internal void Check(AwsRequestReader r, string p)", "    {"]
        lines += self.check_lines(name, required, members)
        lines += ["    }"]
        return [l.replace(", Pattern", f", {pattern_host}.Pattern") for l in lines]

    def check_lines(self, name, required, members):
        lines = []
        for mname in required:
            if mname in members:
                lines.append(f"        r.Required({pascal(mname)}, AwsRequestReader.Path(p, {cs_string(mname)}));")
        for mname, m in members.items():
            prop = pascal(mname)
            path = f"AwsRequestReader.Path(p, {cs_string(mname)})"
            shape = self.shapes[m["shape"]]
            sub = []
            self.checks(m["shape"], prop, path, sub, 8)
            lines += sub
            if shape["type"] == "structure" and m["shape"] in self.documents:
                pass  # checked by whoever it is for (the rules engine)
            elif shape["type"] == "structure":
                lines.append(f"        {prop}?.Check(r, {path});")
            elif shape["type"] == "list" and shape["member"]["shape"] in self.documents:
                pass
            elif shape["type"] == "list" and self.shapes[shape["member"]["shape"]]["type"] == "structure":
                lines.append(f"        for (var i = 0; i < ({prop}?.Count ?? 0); i++)")
                lines.append("        {")
                lines.append(f"            {prop}![i].Check(r, {path} + \"[\" + i + \"]\");")
                lines.append("        }")
            elif shape["type"] == "map" and self.shapes[shape["value"]["shape"]]["type"] == "structure":
                lines.append(f"        foreach (var kv in {prop} ?? new Dictionary<string, {pascal(shape['value']['shape'])}>())")
                lines.append("        {")
                lines.append(f"            kv.Value.Check(r, {path} + \".\" + kv.Key);")
                lines.append("        }")
        return lines

    def write_stmt(self, shape_name, value, out, indent, key=None):
        s = self.shapes[shape_name]
        t = s["type"]
        pad = " " * indent
        name = cs_string(key) if key is not None else None

        def emit(method, arg):
            # A member: w.WriteString("name", v); an item of a list: w.WriteStringValue(v).
            out.append(f"{pad}w.{method}({name}, {arg});" if name else f"{pad}w.{method}Value({arg});")

        scalar = {"string": ("WriteString", value), "integer": ("WriteNumber", value), "long": ("WriteNumber", value),
                  "double": ("WriteNumber", value), "float": ("WriteNumber", value), "boolean": ("WriteBoolean", value),
                  "timestamp": ("WriteNumber", f"AwsJson.EpochSeconds({value})"), "blob": ("WriteBase64String", value)}
        if t in scalar:
            emit(*scalar[t])
        elif t == "structure":
            if name:
                out.append(f"{pad}w.WritePropertyName({name});")
            out.append(f"{pad}{value}.{'WriteTo' if shape_name in self.documents else 'WriteJson'}(w);")
        else:
            kind = "Array" if t == "list" else "Object"
            out.append(f"{pad}w.WriteStart{kind}({name or ''});")
            var = f"item{indent}" if t == "list" else f"kv{indent}"
            out.append(f"{pad}foreach (var {var} in {value})")
            out.append(f"{pad}{{")
            if t == "list":
                self.write_stmt(s["member"]["shape"], var, out, indent + 4)
            elif self.shapes[s["value"]["shape"]]["type"] == "string":
                out.append(f"{pad}    w.WriteString({var}.Key, {var}.Value);")
            else:
                out.append(f"{pad}    w.WritePropertyName({var}.Key);")
                self.write_stmt(s["value"]["shape"], f"{var}.Value", out, indent + 4)
            out.append(f"{pad}}}")
            out.append(f"{pad}w.WriteEnd{kind}();")

    def writer(self, name):
        s = self.shapes[name]
        members = s.get("members", {})
        lines = ["    /// <summary>Writes the body members as JSON; members that are null are left out, as AWS does.</summary>",
                 "    internal void WriteJson(Utf8JsonWriter w)", "    {", "        w.WriteStartObject();"]
        for mname, m in members.items():
            if m.get("location") or s.get("payload") == mname:
                continue
            prop = pascal(mname)
            t = self.shapes[m["shape"]]["type"]
            value = f"{prop}.Value" if t in ("integer", "long", "double", "float", "boolean", "timestamp") else prop
            lines.append(f"        if ({prop} is not null)")
            lines.append("        {")
            self.write_stmt(m["shape"], value, lines, 12, key=m.get("locationName", mname))
            lines.append("        }")
            lines.append("")
        if lines[-1] == "":
            lines.pop()
        lines += ["        w.WriteEndObject();", "    }"]
        headers = [(mname, m) for mname, m in members.items() if m.get("location") == "header"]
        lines += ["", "    /// <summary>Members that travel as response headers.</summary>", "    internal void WriteHeaders(Microsoft.AspNetCore.Http.IHeaderDictionary h)", "    {"]
        for mname, m in headers:
            lines.append(f"        if ({pascal(mname)} is not null)")
            lines.append("        {")
            lines.append(f"            h[{cs_string(m.get('locationName', mname))}] = AwsJson.HeaderValue({pascal(mname)});")
            lines.append("        }")
        lines += ["    }"]
        return lines

    def operations_file(self, implemented):
        lines = self.header() + [
            "using Microsoft.AspNetCore.Http;",
            "using Microsoft.Extensions.DependencyInjection;",
            "",
            f"namespace {self.ns};",
            "",
            f"/// <summary>The operations of the {self.model['metadata'].get('serviceFullName')} model that Trellis implements: one method each, no JSON.</summary>",
            f"public interface I{self.cs}Operations",
            "{",
        ]
        for name in sorted(implemented):
            op = self.model["operations"][name]
            req = pascal(op["input"]["shape"]) if "input" in op else "AwsEmpty"
            res = pascal(op["output"]["shape"]) if "output" in op else "AwsEmpty"
            lines.append(f"    Task<{res}> {name}Async({req} request, CancellationToken cancellationToken);")
            lines.append("")
        if lines[-1] == "":
            lines.pop()
        lines += ["}", "", f"/// <summary>Bind, call, serialise: what the dispatcher runs for each implemented operation.</summary>",
                  f"internal static class {self.cs}Invokers", "{",
                  f"    internal static readonly IReadOnlyDictionary<string, Func<HttpContext, AwsRoute, Task>> All = new Dictionary<string, Func<HttpContext, AwsRoute, Task>>(StringComparer.Ordinal)",
                  "    {"]
        for name in sorted(implemented):
            lines.append(f"        [{cs_string(name)}] = {name}Async,")
        lines += ["    };", ""]
        for name in sorted(implemented):
            op = self.model["operations"][name]
            req = pascal(op["input"]["shape"]) if "input" in op else None
            res_shape = op["output"]["shape"] if "output" in op else None
            # A blob payload member is the whole body, as sent: it is not parsed as JSON.
            in_shape = self.shapes[op["input"]["shape"]] if "input" in op else {}
            raw = bool(in_shape.get("payload")) and self.shapes[in_shape["members"][in_shape["payload"]]["shape"]]["type"] == "blob"
            # An input with nothing in the body never reads one (ConfirmTopicRuleDestination is unsigned: no body is buffered for it).
            bodiless = not any(not m.get("location") for m in in_shape.get("members", {}).values())
            option = ", rawBody: true" if raw else ", readBody: false" if bodiless else ""
            lines += [f"    private static async Task {name}Async(HttpContext context, AwsRoute route)", "    {",
                      f"        var reader = await AwsRequestReader.CreateAsync(context{option});"]
            if req:
                lines += [f"        var request = reader.IsValid ? {req}.Bind(reader) : null;"]
            lines += ["        if (!reader.IsValid)", "        {", "            await reader.RefuseAsync();", "            return;", "        }", ""]
            call = f"context.RequestServices.GetRequiredService<I{self.cs}Operations>().{name}Async({'request!' if req else 'AwsEmpty.Instance'}, context.RequestAborted)"
            payload = None
            if res_shape:
                rs = self.shapes[res_shape]
                payload = rs.get("payload")
            if res_shape and payload:
                lines += [f"        var response = await {call};", f"        await AwsResponse.WritePayloadAsync(context, route.SuccessCode, response.{pascal(payload)}, response.WriteHeaders);"]
            elif res_shape:
                lines += [f"        var response = await {call};", "        await AwsResponse.WriteAsync(context, route.SuccessCode, response.WriteJson, response.WriteHeaders);"]
            else:
                lines += [f"        await {call};", "        await AwsResponse.WriteAsync(context, route.SuccessCode, null, null);"]
            lines += ["    }", ""]
        lines.pop()
        lines += ["}", ""]
        return lines


def hand_written():
    """Operations of the iot model still served by hand-written routes (their .WithName("Operation") in src/Trellis.Api)."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "src", "Trellis.Api", "*.cs")):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r'\.WithName\("([A-Za-z]+)"\)', f.read()))
    return {"iot": names}


def coverage(gens, implemented):
    manual = hand_written()
    rows = ["<!-- aws-coverage:begin (generated by scripts/generate-aws-api.py: do not edit by hand) -->", "",
            "Served: through the model-driven dispatcher (input bound and checked from the model, output",
            "written from it), or by a hand-written route not moved onto it yet. Not served: the answer is 501",
            "`NotImplementedException` naming the operation.", ""]
    for g in gens:
        ops = g.model["operations"]
        impl = implemented.get(g.service, set())
        done = [n for n in ops if n in impl]
        hand = [n for n in ops if n not in impl and n in manual.get(g.service, set())]
        rows.append(f"**{g.model['metadata'].get('serviceFullName')}** (`{g.service}`, {g.source}): {len(done) + len(hand)} of {len(ops)} operations served, {len(done)} of them through the dispatcher.")
        rows.append("")
        rows.append("| operation | method | path | status |")
        rows.append("|---|---|---|---|")
        for n in sorted(ops):
            http = ops[n]["http"]
            status = "dispatcher" if n in impl else "hand-written route" if n in hand else "501"
            rows.append(f"| {n} | {http['method']} | `{http['requestUri']}` | {status} |")
        rows.append("")
    rows.append("<!-- aws-coverage:end -->")
    return "\n".join(rows)


def main():
    implemented = {}
    with open(LIST, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                service, op = line.split()
                implemented.setdefault(service, set()).add(op)
    os.makedirs(OUT, exist_ok=True)
    gens = []
    for service, cs in SERVICES:
        model, source = load(service)
        g = Gen(service, cs, model, source)
        impl = implemented.get(service, set())
        unknown = impl - set(model["operations"])
        if unknown:
            sys.exit(f"{LIST}: {service} has no operation {', '.join(sorted(unknown))}")
        files = {f"{cs}.Routes.g.cs": g.routes(impl)}
        if impl:
            files[f"{cs}.Shapes.g.cs"] = g.shapes_file(impl)
            files[f"{cs}.Operations.g.cs"] = g.operations_file(impl)
        for fname, lines in files.items():
            with open(os.path.join(OUT, fname), "w", encoding="utf-8") as f:
                f.write("\n".join(lines).rstrip("\n") + "\n")
        gens.append(g)
    with open(API_DOC, encoding="utf-8") as f:
        doc = f.read()
    table = coverage(gens, implemented)
    begin, end = "<!-- aws-coverage:begin", "<!-- aws-coverage:end -->"
    if begin in doc:
        doc = doc[:doc.index(begin)] + table + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n## Coverage of AWS's operations\n\n" + table + "\n"
    with open(API_DOC, "w", encoding="utf-8") as f:
        f.write(doc)
    print(f"wrote {OUT} and the coverage table of {os.path.relpath(API_DOC, ROOT)}")


if __name__ == "__main__":
    main()
