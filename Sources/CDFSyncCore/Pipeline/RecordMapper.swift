/// Read access to one row's values, shared by a live `RowView` and rows copied aside.
public protocol RowValueAccess: ~Copyable {
    func withValue<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R?
    func string(_ i: Int) -> String?
    func int64(_ i: Int) -> Int64?
    /// Whether every value's bytes are also its escaped JSON spelling (no quote, backslash or control byte), so
    /// writers may copy them without scanning. `false` is always safe.
    var isVerbatim: Bool { get }
    /// The number of values, when the row knows it.
    var width: Int? { get }
}

extension RowValueAccess where Self: ~Copyable {
    public var isVerbatim: Bool { false }
    public var width: Int? { nil }
}

extension RowView: RowValueAccess {
    public var width: Int? { count }
}

/// What a row becomes under a pipeline's mapping.
public enum MappedRow: Sendable, Equatable {
    /// A participant: its identity keys (normalised) and the canonical JSON record.
    case participant(externalID: String, email: String?, phone: String?, optedIn: Bool, record: [UInt8])
    /// An event with its id, the user's external id (if mapped) and the JSON record.
    case event(eventID: String, userExternalID: String?, record: [UInt8])
    /// Not importable; the reason names the field and the value.
    case invalid(String)
}

/// What a mapped field's value goes through (decided from its name once, not per row).
enum FieldRole {
    case email, phone, country, externalID, eventID, userID, other

    init(_ name: String) {
        switch name {
        case "email": self = .email
        case "phone": self = .phone
        case "country": self = .country
        case "external_id": self = .externalID
        case "event_id": self = .eventID
        case "user_id": self = .userID
        default: self = .other
        }
    }
}

/// Applies a pipeline's mapping to rows: normalises email / phone / country, coerces attribute types, checks
/// required fields and decides consent. Column positions are resolved once from the result's manifest.
public struct RecordMapper: Sendable {
    public let pipeline: Pipeline
    private let fields: [(name: String, keyJSON: [UInt8], index: Int, role: FieldRole)]
    private let attributes: [(attr: Pipeline.Attribute, keyJSON: [UInt8], index: Int)]
    private let consentIndex: Int?
    private let optedIn: Set<String>
    private let required: Set<String>
    /// The top-level keys of every record this mapper writes, in the saved form of a storage record shape: per key
    /// its length (2 bytes big-endian) and the key as written, quotes included. `nil` when its records cannot be
    /// handed over shaped: a `json` attribute is embedded as the source wrote it and could hold any byte.
    /// After ``map(_:into:)`` returns a record, `out.marks` holds where each top-level value starts and ends.
    public let shapeKeys: [UInt8]?

    /// - Throws: `SQLBuildError` naming a mapped column missing from `columns`.
    public init(pipeline: Pipeline, columns: [String]) throws(SQLBuildError) {
        self.pipeline = pipeline
        let lower = columns.map { $0.lowercased() }
        func index(_ column: String, _ what: String) throws(SQLBuildError) -> Int {
            guard let i = lower.firstIndex(of: column.lowercased()) else {
                throw SQLBuildError("\(what): column '\(column)' is not in \(pipeline.source) (columns: \(columns.joined(separator: ", ")))")
            }
            return i
        }
        let order = pipeline.kind == .participants ? Pipeline.participantFields : Pipeline.eventFields
        var f: [(String, [UInt8], Int, FieldRole)] = []
        for name in order {
            guard let col = pipeline.mapping[name] else { continue }
            var key: [UInt8] = []
            JSONWriter.appendEscaped(name, to: &key)
            f.append((name, key, try index(col, "mapping.\(name)"), FieldRole(name)))
        }
        fields = f
        var a: [(Pipeline.Attribute, [UInt8], Int)] = []
        for attr in pipeline.attributes {
            var key: [UInt8] = []
            JSONWriter.appendEscaped(attr.outputName, to: &key)
            a.append((attr, key, try index(attr.column, "attributes.\(attr.outputName)")))
        }
        attributes = a
        if let c = pipeline.consent {
            let col = c.column ?? pipeline.mapping["consent_status"] ?? ""
            consentIndex = try index(col, "consent.column")
            optedIn = Set(c.optedIn.map { $0.trimmingWhitespace().lowercased() })
        } else {
            consentIndex = nil
            optedIn = []
        }
        required = Set(pipeline.validation.required)
        var keys: [UInt8] = []
        var keysFit = fields.allSatisfy { ShapeKeys.append($0.keyJSON, to: &keys) }
        if pipeline.kind == .participants { keysFit = keysFit && ShapeKeys.append("\"contactable\"".utf8, to: &keys) }
        if !attributes.isEmpty {
            keysFit = keysFit && ShapeKeys.append((pipeline.kind == .participants ? "\"attributes\"" : "\"properties\"").utf8, to: &keys)
        }
        shapeKeys = keysFit && !keys.isEmpty && !pipeline.attributes.contains(where: { $0.type == .json }) ? keys : nil
    }

    /// Maps one row. `out` is a scratch writer reused across rows.
    public func map<R: RowValueAccess & ~Copyable>(_ row: borrowing R, into out: inout JSONWriter) -> MappedRow {
        out.reset()
        out.bytes.append(UInt8(ascii: "{"))
        var first = true
        var externalID: String?
        var email: String?
        var phone: String?
        var eventID: String?
        var userID: String?
        for f in fields {
            // A field copied as it is (no normalisation) whose bytes are ASCII goes from the row into the record
            // without a String; empty or all whitespace is null, as on the String path below, which takes
            // everything else (a String per field was the largest item left in the pipeline sync's profile).
            if f.role == .other, row.withValue(f.index, { v -> Bool in
                var blank = true
                for b in v {
                    if b >= 0x80 { return false }
                    if !String.isASCIIWhitespace(b) { blank = false }
                }
                if blank && required.contains(f.name) { return false }  // the String path reports it
                if !first { out.bytes.append(UInt8(ascii: ",")) }
                first = false
                out.bytes.append(contentsOf: f.keyJSON)
                out.bytes.append(UInt8(ascii: ":"))
                out.marks.append(out.bytes.count)
                if blank {
                    out.bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
                } else {
                    JSONWriter.appendEscaped(utf8: v, to: &out.bytes)
                }
                out.marks.append(out.bytes.count)
                return true
            }) == true {
                continue
            }
            var value = row.string(f.index)
            if let v = value, v.trimmingWhitespace().isEmpty { value = nil }
            if let v = value {
                // By role, decided once per field: comparing the field's name with each case per row showed up as
                // string comparisons in perf.
                switch f.role {
                case .email:
                    switch Normalize.email(v) {
                    case .value(let n): value = n
                    case .invalid(let why): return .invalid(why)
                    }
                    email = value
                case .phone:
                    switch Normalize.phone(v, defaultRegion: pipeline.validation.defaultPhoneRegion) {
                    case .value(let n): value = n
                    case .invalid(let why): return .invalid(why)
                    }
                    phone = value
                case .country:
                    switch Normalize.country(v) {
                    case .value(let n): value = n
                    case .invalid(let why): return .invalid(why)
                    }
                case .externalID, .eventID, .userID:
                    value = String(v.trimmingWhitespace())
                case .other: break
                }
            }
            if value == nil && required.contains(f.name) { return .invalid("required field \(f.name) is empty") }
            switch f.role {
            case .externalID: externalID = value
            case .eventID: eventID = value
            case .userID: userID = value
            default: break
            }
            if !first { out.bytes.append(UInt8(ascii: ",")) }
            first = false
            out.bytes.append(contentsOf: f.keyJSON)
            out.bytes.append(UInt8(ascii: ":"))
            out.marks.append(out.bytes.count)
            if let value { JSONWriter.appendEscaped(value, to: &out.bytes) } else { out.bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C]) }
            out.marks.append(out.bytes.count)
        }
        for r in required where pipeline.mapping[r] == nil { return .invalid("required field \(r) is not mapped") }
        var opted = true
        if let ci = consentIndex {
            let v = row.string(ci)?.trimmingWhitespace().lowercased() ?? ""
            opted = optedIn.contains(v)
        }
        if pipeline.kind == .participants {
            if !first { out.bytes.append(UInt8(ascii: ",")) }
            first = false
            out.bytes.append(contentsOf: Array("\"contactable\":".utf8))
            out.marks.append(out.bytes.count)
            out.bytes.append(contentsOf: Array((opted ? "true" : "false").utf8))
            out.marks.append(out.bytes.count)
        }
        if !attributes.isEmpty {
            if !first { out.bytes.append(UInt8(ascii: ",")) }
            out.bytes.append(contentsOf: Array(
                (pipeline.kind == .participants ? "\"attributes\":" : "\"properties\":").utf8))
            out.marks.append(out.bytes.count)
            out.bytes.append(UInt8(ascii: "{"))
            var firstAttr = true
            for a in attributes {
                if !firstAttr { out.bytes.append(UInt8(ascii: ",")) }
                firstAttr = false
                out.bytes.append(contentsOf: a.keyJSON)
                out.bytes.append(UInt8(ascii: ":"))
                guard let text = row.string(a.index) else {
                    out.bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
                    continue
                }
                if let why = Self.appendTyped(text, as: a.attr.type, to: &out.bytes) {
                    return .invalid("attribute \(a.attr.outputName): \(why)")
                }
            }
            out.bytes.append(UInt8(ascii: "}"))
            out.marks.append(out.bytes.count)
        }
        out.bytes.append(UInt8(ascii: "}"))
        switch pipeline.kind {
        case .participants:
            guard let externalID else { return .invalid("external_id is empty") }
            return .participant(externalID: externalID, email: email, phone: phone, optedIn: opted, record: out.bytes)
        case .events:
            guard let eventID else { return .invalid("event_id is empty") }
            return .event(eventID: eventID, userExternalID: userID, record: out.bytes)
        }
    }

    /// Appends `text` as JSON of `type`; returns why it cannot be, or nil.
    static func appendTyped(_ text: String, as type: Pipeline.Attribute.ValueType, to out: inout [UInt8]) -> String? {
        let t = text.trimmingWhitespace()
        switch type {
        case .string:
            JSONWriter.appendEscaped(text, to: &out)
        case .integer:
            guard let v = Int64(t) else { return "'\(text)' is not an integer" }
            out.append(contentsOf: Array(String(v).utf8))
        case .decimal:
            var s = String(t)
            let ok = s.withUTF8 { ExactDecimal.parse(UnsafeRawBufferPointer($0)) } != nil
            guard ok else { return "'\(text)' is not a decimal" }
            JSONWriter.appendEscaped(s, to: &out)
        case .double:
            guard let v = Double(t), v.isFinite else { return "'\(text)' is not a finite number" }
            out.append(contentsOf: Array("\(v)".utf8))
        case .boolean:
            switch t.lowercased() {
            case "true", "1", "yes", "y", "t": out.append(contentsOf: Array("true".utf8))
            case "false", "0", "no", "n", "f": out.append(contentsOf: Array("false".utf8))
            default: return "'\(text)' is not a boolean"
            }
        case .date:
            let p = t.split(separator: "-")
            guard p.count == 3, p[0].count == 4, let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]),
                (1...12).contains(m), (1...31).contains(d), y > 0
            else { return "'\(text)' is not a date (YYYY-MM-DD)" }
            JSONWriter.appendEscaped(String(t), to: &out)
        case .timestamp:
            guard t.count >= 10, t.dropFirst(4).first == "-", t.allSatisfy({ $0.isNumber || "-:T. Z+".contains($0) }) else {
                return "'\(text)' is not an ISO timestamp"
            }
            JSONWriter.appendEscaped(String(t), to: &out)
        case .json:
            guard let f = t.first, f == "{" || f == "[" else { return "'\(text)' is not a JSON object or array" }
            // JSON_ARRAY delivers complex types as JSON text; it is embedded as is after a bracket check.
            var depth = 0
            var inString = false
            var escaped = false
            for c in t.utf8 {
                if inString {
                    if escaped { escaped = false } else if c == 0x5C { escaped = true } else if c == 0x22 { inString = false }
                } else if c == 0x22 { inString = true } else if c == 0x7B || c == 0x5B { depth += 1 } else if c == 0x7D || c == 0x5D {
                    depth -= 1
                    if depth < 0 { return "'\(text)' has unbalanced brackets" }
                }
            }
            guard depth == 0, !inString else { return "'\(text)' is not complete JSON" }
            out.append(contentsOf: Array(t.utf8))
        }
        return nil
    }
}
