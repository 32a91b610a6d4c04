import Foundation

extension PipelineSuggestion {
    /// The version tag of ``json()``.
    public static let jsonFormat = "cdfsync-pipeline-suggestion/1"

    /// A commented pipeline file: every `suggested` field in the mapping with why in a comment, the rest commented out
    /// with their candidates, the consent block, the other columns as commented typed attributes, the mode (and
    /// watermark), validation and an ndjson sink. It loads as ``pipeline(connection:)`` (when ``isComplete``).
    ///
    /// Names are written so they read back as they are: YAML double quotes for anything but plain ASCII words, `$`
    /// doubled (the loader expands `${…}`), backticks around source parts that need them.
    /// - Parameter connection: how the file reaches the warehouse: a saved connection's name, or inline settings
    ///   whose secrets are environment variable names (never a secret itself).
    public func yaml(connection: Pipeline.ConnectionRef) -> String {
        var w = YAMLLines()
        let sourceShown = source.description
        w.comment("A cdfsync pipeline for \(sourceShown), suggested by `cdfsync pipeline init` from its "
            + "\(PipelineSuggester.count(columnCount)) column(s) and a sample of "
            + "\(PipelineSuggester.count(sampledRows)) row(s). Check every line before the first sync: the mapping "
            + "decides what the panel holds, consent who is imported and who may be contacted. Commented-out lines are left for you to decide (uncomment "
            + "what fits). Every field is described in docs/pipelines.md. Then: cdfsync pipeline validate FILE; "
            + "cdfsync pipeline preview FILE.")
        if !isComplete {
            w.comment("NOT READY: \(keyField) has no column yet (\(field(keyField)?.reason ?? "")). Uncomment or write "
                + "mapping.\(keyField) before validating.")
        }
        for n in notes { w.comment("Note: \(n)") }
        w.blank()
        w.line("name: \(YAMLText.value(name))", "the pipeline's state key (checkpoint, identity scope, runs)")
        w.blank()
        writeConnection(&w, connection)
        w.line("source: \(YAMLText.value(PipelineSuggester.sourceText(source)))",
            "\(PipelineSuggester.describe(tableType: tableType)), \(columnCount) column(s)")
        w.line("kind: \(kind.rawValue)", "participants | events")
        writeMode(&w)
        if kind == .events {
            if let i = identityPipeline {
                w.line("identity_pipeline: \(YAMLText.value(i))",
                    "the participants pipeline whose external ids user_id holds")
            } else {
                w.line("# identity_pipeline: NAME", "the participants pipeline whose external ids user_id holds")
            }
        }
        w.blank()
        writeMapping(&w)
        writeConsent(&w)
        writeAttributes(&w)
        w.blank()
        w.line("validation:")
        w.line("  required: [\(keyField)]", "rows without it are invalid (counted, sampled in the run record)")
        w.line("  max_invalid_ratio: 0.05", "a run with more invalid rows than this stops before its checkpoint")
        if let r = defaultPhoneRegion {
            w.line("  default_phone_region: \(YAMLText.value(r))",
                "phone numbers without a country code are read in it")
        } else if kind == .participants {
            w.line("  # default_phone_region: GB", "for phone numbers written without a country code")
        }
        w.blank()
        w.line("sinks:")
        w.line("  - type: ndjson")
        w.line("    directory: \(YAMLText.value(".cdfsync/out/\(name)"))", "zstd NDJSON segments and a manifest.json")
        if kind == .participants {
            w.blank()
            w.line("# activation:", "what new eligible participants get; default import: nothing more")
            w.line("#   invite_study: STUDY-ID", "or pool: NAME / invite_task: ID (docs/activation.md)")
            w.line("#   eligibility: [{field: country, op: in, value: [GB]}]", "sent after cdfsync pipeline activate")
        }
        w.blank()
        w.line("# schedule: hourly", "15m | hourly | daily, for cdfsync schedule")
        return w.text
    }

    private func writeConnection(_ w: inout YAMLLines, _ c: Pipeline.ConnectionRef) {
        if let n = c.name {
            w.line("connection: \(YAMLText.value(n))", "a saved connection (cdfsync connection list)")
            return
        }
        w.line("connection:", "inline settings; secrets are read from the environment variables named here")
        if let h = c.host {
            w.line("  host: \(YAMLText.value(h))")
        } else {
            w.line("  # host: https://dbc-….cloud.databricks.com", "omitted: --host or DATABRICKS_HOST is used")
        }
        if let id = c.warehouseID { w.line("  warehouse_id: \(YAMLText.value(id))") }
        if let p = c.httpPath { w.line("  http_path: \(YAMLText.value(p))") }
        if let t = c.tokenEnv { w.line("  token_env: \(YAMLText.value(t))", "the access token's variable") }
        if let i = c.clientIDEnv { w.line("  client_id_env: \(YAMLText.value(i))", "OAuth M2M client id's variable") }
        if let s = c.clientSecretEnv {
            w.line("  client_secret_env: \(YAMLText.value(s))", "OAuth M2M client secret's variable")
        }
    }

    private func writeMode(_ w: inout YAMLLines) {
        let cursorList = mode.cursorCandidates.map(PipelineSuggester.display).joined(separator: ", ")
        switch mode.mode {
        case .cdf:
            w.line("mode: cdf", "\(mode.reason): each run reads the change data since the last")
            w.line("start: latest", "first run: a snapshot at the latest version, then change data from there "
                + "(first: all change data from version 0)")
        case .watermark:
            w.line("mode: watermark", mode.reason)
            w.line("watermark:")
            w.line("  column: \(YAMLText.value(mode.cursor ?? ""))",
                "rows are read in its order, after where the last run stopped")
            w.line("  lookback_seconds: 0", "re-read this many seconds back on each run (rows that arrive late)")
        case .snapshot:
            w.line("mode: snapshot", "\(mode.reason): each run reads it whole")
            if !cursorList.isEmpty {
                w.comment("to read only what changed, choose a cursor column (\(cursorList)) and write mode: watermark "
                    + "with watermark: {column: …}")
            }
        case .auto:
            w.line("mode: auto", mode.reason)
        }
        if !isViewType, changeDataFeed != true, mode.mode != .auto {
            w.comment("or turn on the table's change data feed (changes are recorded from then on): ALTER TABLE "
                + "\(source.quoted) SET TBLPROPERTIES (delta.enableChangeDataFeed = true); then mode: cdf")
        }
    }

    private var isViewType: Bool {
        guard let t = tableType?.uppercased() else { return false }
        return t == "VIEW" || t == "MATERIALIZED_VIEW" || t == "METRIC_VIEW"
    }

    private func writeMapping(_ w: inout YAMLLines) {
        let active = mapping
        w.line("mapping:", "\(kind == .events ? "event" : "panel") field: source column")
        for f in fields {
            let key = "  \(f.field): "
            switch f.status {
            case .suggested:
                let column = YAMLText.value(f.column ?? "")
                if active[f.field] != nil {
                    w.line(key + column, f.reason)
                } else {
                    w.line("  # " + f.field + ": " + column, "\(f.reason); needs identity_pipeline (above)")
                }
            case .uncertain:
                w.line("  # \(f.field): \(YAMLText.value(f.column ?? ""))", "unsure: \(f.reason)")
            case .ambiguous:
                w.comment("\(f.field): \(f.reason); uncomment one", indent: 2)
                let fitting = f.candidates.filter(\.fits)
                for c in fitting.filter({ $0.nameTier == fitting.first?.nameTier }).prefix(5) {
                    w.line("  # \(f.field): \(YAMLText.value(c.column))")
                }
            case .notFound:
                w.comment("\(f.field): \(f.reason)", indent: 2)
            }
        }
    }

    private func writeConsent(_ w: inout YAMLLines) {
        guard kind == .participants else { return }
        w.blank()
        if let c = consent {
            writeConsentBlock(&w, c, commented: c.status != .suggested)
            return
        }
        if !consentAlternatives.isEmpty {
            w.comment("consent: the column is ambiguous; uncomment the block of the right one (and its mapping above)")
            for c in consentAlternatives { writeConsentBlock(&w, c, commented: true) }
            return
        }
        w.comment("consent: no column looks like consent, so every row is imported as contactable. If the source "
            + "records consent, write: consent: {column: COLUMN, opted_in: [VALUES]}")
    }

    private func writeConsentBlock(_ w: inout YAMLLines, _ c: Consent, commented: Bool) {
        let p = commented ? "# " : ""
        w.line("\(p)consent:", "a row not opted in is not imported; one withdrawn later is kept, not contactable")
        w.line("\(p)  column: \(YAMLText.value(c.column))", c.reason)
        if c.optedIn.isEmpty {
            w.line("\(p)  opted_in: [VALUE]", "none of the sampled values reads as opted in: write them")
        } else {
            let values = c.optedIn.map { YAMLText.value($0, forceQuotes: true) }.joined(separator: ", ")
            w.line("\(p)  opted_in: [\(values)]",
                "compared trimmed and case-insensitively")
        }
        func list(_ values: [ValueCount]) -> String {
            // Values shown cut at 60 characters: a comment names them, it does not copy a column's free text.
            values.prefix(12).map { v in
                let shown = v.value.count > 60 ? String(v.value.prefix(60)) + "…" : v.value
                return "\(YAMLText.quoted(shown)) (\(PipelineSuggester.count(v.count)))"
            }
                .joined(separator: ", ") + (values.count > 12 ? ", …" : "")
        }
        if !c.notOptedIn.isEmpty { w.comment("  read as not opted in: \(list(c.notOptedIn))") }
        if !c.unrecognised.isEmpty {
            w.comment("  not recognised, so read as not opted in (add any that mean opted in): \(list(c.unrecognised))")
        }
    }

    private func writeAttributes(_ w: inout YAMLLines) {
        guard !attributes.isEmpty else { return }
        w.blank()
        w.line("attributes:", "the other columns as typed attributes; uncomment those to keep")
        for a in attributes {
            var item = "column: \(YAMLText.value(a.column))"
            if let n = a.name { item += ", name: \(YAMLText.value(n))" }
            item += ", type: \(a.type.rawValue)"
            w.line("  # - {\(item)}", a.sourceType)
        }
    }

    /// The suggestions as one JSON object (`cdfsync-pipeline-suggestion/1`): each field's status, column, confidence,
    /// reason and candidates; consent; mode; attributes; notes. For scripts (the console calls the library).
    public func json() -> [UInt8] {
        var w = JSONWriter()
        func confidence(_ c: Double) {
            let hundredths = Int((c * 100).rounded())
            w.raw(Array("\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)".utf8))
        }
        func consentJSON(_ c: Consent) {
            w.beginObject()
            w.key("column"); w.string(c.column)
            w.key("status"); w.string(c.status.rawValue)
            w.key("opted_in"); w.beginArray(); for v in c.optedIn { w.string(v) }; w.endArray()
            for (key, list) in [("not_opted_in", c.notOptedIn), ("unrecognised", c.unrecognised)] {
                w.key(key)
                w.beginArray()
                for v in list {
                    w.beginObject()
                    w.key("value"); w.string(v.value)
                    w.key("count"); w.int(Int64(v.count))
                    w.endObject()
                }
                w.endArray()
            }
            w.key("inverted"); w.bool(c.inverted)
            w.key("reason"); w.string(c.reason)
            w.endObject()
        }
        w.beginObject()
        w.key("format"); w.string(Self.jsonFormat)
        w.key("source"); w.string(source.description)
        w.key("source_text"); w.string(PipelineSuggester.sourceText(source))
        w.key("kind"); w.string(kind.rawValue)
        w.key("name"); w.string(name)
        w.key("table_type"); w.string(tableType)
        w.key("change_data_feed")
        if let cdf = changeDataFeed { w.bool(cdf) } else { w.null() }
        w.key("columns"); w.int(Int64(columnCount))
        w.key("sampled_rows"); w.int(Int64(sampledRows))
        w.key("complete"); w.bool(isComplete)
        w.key("fields")
        w.beginArray()
        for f in fields {
            w.beginObject()
            w.key("field"); w.string(f.field)
            w.key("status"); w.string(f.status.rawValue)
            w.key("column"); w.string(f.column)
            w.key("confidence"); confidence(f.confidence)
            w.key("reason"); w.string(f.reason)
            w.key("candidates")
            w.beginArray()
            for c in f.candidates {
                w.beginObject()
                w.key("column"); w.string(c.column)
                w.key("type"); w.string(c.type)
                w.key("fits"); w.bool(c.fits)
                w.key("confidence"); confidence(c.confidence)
                w.key("reason"); w.string(c.reason)
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.key("consent")
        if let c = consent { consentJSON(c) } else { w.null() }
        w.key("consent_alternatives")
        w.beginArray()
        for c in consentAlternatives { consentJSON(c) }
        w.endArray()
        w.key("mode")
        w.beginObject()
        w.key("mode"); w.string(mode.mode.rawValue)
        w.key("cursor"); w.string(mode.cursor)
        w.key("reason"); w.string(mode.reason)
        w.key("cursor_candidates"); w.beginArray(); for c in mode.cursorCandidates { w.string(c) }; w.endArray()
        w.endObject()
        w.key("attributes")
        w.beginArray()
        for a in attributes {
            w.beginObject()
            w.key("column"); w.string(a.column)
            w.key("name"); w.string(a.name)
            w.key("type"); w.string(a.type.rawValue)
            w.key("source_type"); w.string(a.sourceType)
            w.endObject()
        }
        w.endArray()
        w.key("notes"); w.beginArray(); for n in notes { w.string(n) }; w.endArray()
        w.endObject()
        return w.bytes
    }
}

/// Lines of a YAML file with comments aligned after the values.
struct YAMLLines {
    static let commentColumn = 41
    static let width = 118
    private(set) var text = ""

    mutating func blank() { text += "\n" }

    /// `content`, then `# comment` at column 41 (or one space after a longer content).
    mutating func line(_ content: String, _ comment: String? = nil) {
        guard let comment, !comment.isEmpty else {
            text += content + "\n"
            return
        }
        let pad = max(1, Self.commentColumn - content.count)
        text += content + String(repeating: " ", count: pad) + "# " + YAMLText.commentSafe(comment) + "\n"
    }

    /// A comment on lines of its own, wrapped at about 118 columns.
    mutating func comment(_ words: String, indent: Int = 0) {
        let prefix = String(repeating: " ", count: indent) + "# "
        var current = prefix
        for word in YAMLText.commentSafe(words).split(separator: " ", omittingEmptySubsequences: false) {
            if current.count > prefix.count && current.count + word.count + 1 > Self.width {
                text += current + "\n"
                current = prefix
            }
            current += (current.hasSuffix(" ") ? "" : " ") + word
        }
        text += current + "\n"
    }
}

/// YAML scalars and comments for names and values from the warehouse.
enum YAMLText {
    static let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"]

    /// Whether `s` reads back as the same string when written bare: ASCII letters, digits, `_`, `-`, `.` and `/`,
    /// starting with a letter or `_` or `.`, and not a word YAML reads as a boolean or null.
    static func isPlain(_ s: String) -> Bool {
        guard let first = s.utf8.first else { return false }
        let startOK = (first >= 0x61 && first <= 0x7A) || (first >= 0x41 && first <= 0x5A) || first == 0x5F
            || first == 0x2E
        let allOK = s.utf8.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D
                || b == 0x2E || b == 0x2F
        }
        return startOK && allOK && !reserved.contains(s.lowercased())
    }

    /// `"…"` with `\` and `"` escaped and control characters (and the line separators YAML breaks at) as escapes.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                let v = scalar.value
                if v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) {
                    out += "\\x" + hex(v, 2)
                } else if v == 0x2028 || v == 0x2029 || v == 0xFEFF {
                    out += "\\u" + hex(v, 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A value the loader reads back as `s`: every `$` doubled (the loader expands `${…}` and reads `$$` as `$`),
    /// then bare when plain, else double-quoted.
    static func value(_ s: String, forceQuotes: Bool = false) -> String {
        let escaped = s.replacingOccurrences(of: "$", with: "$$")
        return isPlain(escaped) && !forceQuotes ? escaped : quoted(escaped)
    }

    /// Comment text on one line: control characters shown as escapes.
    static func commentSafe(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || v == 0xFEFF {
                out += "\\u{\(String(v, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func hex(_ v: UInt32, _ digits: Int) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}
