/// A pipeline's activation compiled for the writer: its target and who is eligible (docs/activation.md).
///
/// A participant is **eligible** when their panel record says `"contactable": true` (opted in under the pipeline's
/// consent rule), holds an email or a phone to reach them at, and meets every `activation.eligibility` condition.
/// Conditions are evaluated on the record as the panel stores it, with the filters' operators and SQL's idea of
/// NULL: a missing or null field meets only `is_null` (and `ne`, `not_in`, `lt`… are not met by it). Text is
/// compared exactly; `lt`/`le`/`gt`/`ge` compare numbers as numbers when both sides are numbers, else as text (ISO
/// dates and timestamps then compare in time order); `like` takes `%` and `_` as SQL does. Condition values on
/// `country` are normalised as the panel's values are (`gb`, `United Kingdom` → `GB`), on `email` lower-cased.
public struct ActivationRule: Sendable, Equatable {
    public let target: ActivationTarget
    public let conditions: [Pipeline.Activation.Condition]
    /// Per condition: its operand values, normalised like the field's stored values.
    private let operands: [[String]]

    /// Why a participant is not eligible.
    public enum Reason: Sendable, Hashable {
        /// `"contactable"` is not true: not opted in (or withdrawn).
        case notOptedIn
        /// Neither an email nor a phone.
        case noContact
        /// Condition `index` of `activation.eligibility` is not met.
        case condition(Int)
    }

    /// The rule of `activation`; nil for `import` (or an activation naming more than one target).
    public init?(_ activation: Pipeline.Activation) {
        guard let target = activation.target else { return nil }
        self.target = target
        conditions = activation.eligibility
        operands = activation.eligibility.map { c in
            (c.value?.values ?? []).map { v in
                switch c.field {
                case "country":
                    if case .value(let n) = Normalize.country(v) { return n }
                    return v
                case "email": return v.trimmingWhitespace().lowercased()
                default: return v
                }
            }
        }
    }

    /// The phrase a reason is counted and shown under: `not opted in`, `no email or phone`, `eligibility: country
    /// in [GB, IE]`.
    public func describe(_ reason: Reason) -> String {
        switch reason {
        case .notOptedIn: "not opted in"
        case .noContact: "no email or phone"
        case .condition(let i): "eligibility: " + conditions[i].description
        }
    }

    /// Whether the participant whose record is `record` (a JSON object as the panel stores it) is eligible; nil when
    /// they are, else the first reason they are not (opt-in first, then contact, then the conditions in order).
    public func ineligibility(of record: UnsafeRawBufferPointer) -> Reason? {
        let fields = RecordFields(record)
        if let reason = Self.contactIneligibility(fields) { return reason }
        for (i, c) in conditions.enumerated() where !Self.meets(c.op, fields.value(c.field)?.text, operands[i]) {
            return .condition(i)
        }
        return nil
    }

    /// Whether the participant of `record` can be contacted at all: opted in (`"contactable": true`) with an email
    /// or a phone; nil when they can. What delivery checks again just before an invitation goes out (a withdrawal
    /// in between means no invitation).
    public static func contactIneligibility(of record: [UInt8]) -> Reason? {
        record.withUnsafeBytes { contactIneligibility(RecordFields($0)) }
    }

    static func contactIneligibility(_ fields: RecordFields) -> Reason? {
        guard fields.value("contactable") == .bool(true) else { return .notOptedIn }
        if fields.value("email")?.text == nil && fields.value("phone")?.text == nil { return .noContact }
        return nil
    }

    /// ``ineligibility(of:)`` of a record held in an array.
    public func ineligibility(of record: [UInt8]) -> Reason? {
        record.withUnsafeBytes { ineligibility(of: $0) }
    }

    /// Whether a field's value (nil: missing or null) meets `op` with `operands`.
    static func meets(_ op: Pipeline.Filter.Operator, _ value: String?, _ operands: [String]) -> Bool {
        switch op {
        case .isNull: return value == nil
        case .isNotNull: return value != nil
        default: break
        }
        guard let value, let first = operands.first else { return false }
        switch op {
        case .eq: return value == first
        case .ne: return value != first
        case .lt: return compare(value, first) < 0
        case .le: return compare(value, first) <= 0
        case .gt: return compare(value, first) > 0
        case .ge: return compare(value, first) >= 0
        case .in: return operands.contains(value)
        case .notIn: return !operands.contains(value)
        case .like: return like(Array(value.unicodeScalars), Array(first.unicodeScalars))
        case .isNull, .isNotNull: return false
        }
    }

    /// Numbers as numbers when both sides are numbers, else text in Unicode scalar order.
    static func compare(_ a: String, _ b: String) -> Int {
        if let x = Double(a), let y = Double(b), x.isFinite, y.isFinite { return x < y ? -1 : x > y ? 1 : 0 }
        return a == b ? 0 : (a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) ? -1 : 1)
    }

    /// SQL LIKE: `%` any run, `_` one character, `\` escapes the next; the whole value must match.
    static func like(_ s: [Unicode.Scalar], _ p: [Unicode.Scalar]) -> Bool {
        // Iterative with one backtrack point (the last `%`): linear in practice, never exponential.
        var (i, j) = (0, 0)
        var star: (p: Int, s: Int)?
        while i < s.count {
            if j < p.count, p[j] == "%" {
                star = (j, i)
                j += 1
                continue
            }
            if j < p.count {
                var literal = p[j]
                var width = 1
                if literal == "\\", j + 1 < p.count {
                    literal = p[j + 1]
                    width = 2
                } else if literal == "_" {
                    i += 1
                    j += 1
                    continue
                }
                if literal == s[i] {
                    i += 1
                    j += width
                    continue
                }
            }
            guard let st = star else { return false }
            star = (st.p, st.s + 1)
            i = st.s + 1
            j = st.p + 1
        }
        while j < p.count, p[j] == "%" { j += 1 }
        return j == p.count
    }

    /// Why `field` cannot be a condition's field of `pipeline` (a participant field it maps, `contactable`, or
    /// `attributes.NAME` of one of its attributes), or nil.
    static func fieldProblem(_ field: String, pipeline: Pipeline, attributes: Set<String>) -> String? {
        if field.hasPrefix("attributes.") {
            let name = String(field.dropFirst("attributes.".count))
            if attributes.contains(name) { return nil }
            return "'\(field)' is not an attribute of this pipeline"
                + (attributes.isEmpty ? " (it has none)" : " (attributes: \(attributes.sorted().joined(separator: ", ")))")
        }
        if field == "contactable" { return nil }
        guard Pipeline.participantFields.contains(field) else {
            return "'\(field)' is not a panel field (fields: \(Pipeline.participantFields.joined(separator: ", ")), "
                + "or attributes.NAME)"
        }
        if pipeline.mapping[field] == nil { return "'\(field)' is not mapped, so no record holds it" }
        return nil
    }
}

/// The top-level values of a record (a JSON object as the mapper writes it) and those of its `attributes` object,
/// read without building a dictionary of everything: ``value(_:)`` finds one field (`country`,
/// `attributes.tier`).
///
/// Tolerant by design: a record that is not a well-formed object reads as having no fields (nothing is eligible
/// on damaged data).
struct RecordFields {
    typealias Value = FlatJSONValue

    private let record: UnsafeRawBufferPointer

    init(_ record: UnsafeRawBufferPointer) { self.record = record }

    /// The value of `path` (`email`, or `attributes.tier`); nil when absent.
    func value(_ path: String) -> Value? {
        var p = JSONCursor(bytes: record)
        if let dot = path.firstIndex(of: "."), path[..<dot] == "attributes" {
            guard p.seek(key: "attributes"), p.peek == UInt8(ascii: "{") else { return nil }
            return p.seek(key: String(path[path.index(after: dot)...])) ? p.readValue() : nil
        }
        return p.seek(key: path) ? p.readValue() : nil
    }
}

/// One value of a JSON object as ``FlatJSON`` and the activation rule read it.
public enum FlatJSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number's text as written.
    case number(String)
    case string(String)
    /// An object or an array (not looked into).
    case composite

    /// The value as condition operands compare it: text for strings and numbers, `true`/`false`; nil for null and
    /// composites.
    public var text: String? {
        switch self {
        case .null, .composite: nil
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n
        case .string(let s): s
        }
    }
}

/// Reads the members of a JSON object without Foundation (the invitation ledger's entries: a decode per invitation
/// delivered, where `JSONDecoder` cost ~30 µs).
public enum FlatJSON {
    /// The object's members in order; nil when `bytes` is not one well-formed object.
    public static func members(_ bytes: UnsafeRawBufferPointer) -> [(key: String, value: FlatJSONValue)]? {
        var c = JSONCursor(bytes: bytes)
        guard c.peek == UInt8(ascii: "{") else { return nil }
        c.i += 1
        var out: [(key: String, value: FlatJSONValue)] = []
        if c.peek == UInt8(ascii: "}") { return out }
        while true {
            guard c.peek == UInt8(ascii: "\""), let key = c.readString(), c.peek == UInt8(ascii: ":") else { return nil }
            c.i += 1
            guard let value = c.readValue() else { return nil }
            out.append((key, value))
            guard let next = c.peek else { return nil }
            c.i += 1
            if next == UInt8(ascii: "}") { return out }
            guard next == UInt8(ascii: ",") else { return nil }
        }
    }
}

/// A forward-only reader of one JSON object's members (bounds-checked; never traps on malformed input).
struct JSONCursor {
    let bytes: UnsafeRawBufferPointer
    var i = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var peek: UInt8? {
        mutating get {
            skipSpace()
            return i < bytes.count ? bytes[i] : nil
        }
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    /// Enters the object at the cursor and stops after the `:` of member `key` (true), or returns false when the
    /// object has no such member or is malformed.
    mutating func seek(key: String) -> Bool {
        guard peek == UInt8(ascii: "{") else { return false }
        i += 1
        if peek == UInt8(ascii: "}") { return false }
        while true {
            guard peek == UInt8(ascii: "\""), let matches = keyMatches(key) else { return false }
            guard peek == UInt8(ascii: ":") else { return false }
            i += 1
            if matches { return true }
            guard skipValue() else { return false }
            // Members are separated by exactly one comma; anything else ends (or breaks) the object.
            guard peek == UInt8(ascii: ",") else { return false }
            i += 1
        }
    }

    /// Reads the value at the cursor.
    mutating func readValue() -> RecordFields.Value? {
        guard let c = peek else { return nil }
        switch c {
        case UInt8(ascii: "\""): return readString().map { .string($0) }
        case UInt8(ascii: "{"), UInt8(ascii: "["): return skipValue() ? .composite : nil
        case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return literal("null") ? .null : nil
        default:
            let start = i
            guard skipNumber() else { return nil }
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
        }
    }

    /// Steps over a number's characters; false when there are none.
    private mutating func skipNumber() -> Bool {
        let start = i
        while i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+")
            || bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")
            || (bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9"))
        {
            i += 1
        }
        return i > start
    }

    /// Steps over a literal or a number as ``readValue()`` reads them, without making its value; false when
    /// malformed.
    private mutating func skipScalar() -> Bool {
        switch peek {
        case UInt8(ascii: "t"): literal("true")
        case UInt8(ascii: "f"): literal("false")
        case UInt8(ascii: "n"): literal("null")
        case nil: false
        default: skipNumber()
        }
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { return false }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { return false }
        i += n
        return true
    }

    /// Reads the member name at the cursor and says whether it is `key`; nil when malformed. A name without escapes
    /// is compared byte for byte where it lies (no allocation: a record's members are scanned per row).
    mutating func keyMatches(_ key: String) -> Bool? {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
        var j = i + 1
        while j < bytes.count, bytes[j] != UInt8(ascii: "\""), bytes[j] != UInt8(ascii: "\\") { j += 1 }
        guard j < bytes.count else { return nil }
        if bytes[j] == UInt8(ascii: "\"") {
            let name = UnsafeRawBufferPointer(rebasing: bytes[(i + 1)..<j])
            i = j + 1
            return name.elementsEqual(key.utf8)
        }
        guard let name = readString() else { return nil }
        return name == key
    }

    /// Reads a string at the cursor (its escapes decoded); nil when malformed.
    mutating func readString() -> String? {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
        i += 1
        // Most strings have no escape: made from their bytes where they lie, in one step.
        var j = i
        while j < bytes.count, bytes[j] != UInt8(ascii: "\""), bytes[j] != UInt8(ascii: "\\") { j += 1 }
        guard j < bytes.count else { return nil }
        if bytes[j] == UInt8(ascii: "\"") {
            defer { i = j + 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[i..<j]), as: UTF8.self)
        }
        var out = Array(UnsafeRawBufferPointer(rebasing: bytes[i..<j]))
        i = j
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            guard b == UInt8(ascii: "\\") else {
                out.append(b)
                continue
            }
            guard i < bytes.count else { return nil }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard let unit = hex4() else { return nil }
                var scalarValue = UInt32(unit)
                if (0xD800..<0xDC00).contains(unit), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"),
                    bytes[i + 1] == UInt8(ascii: "u")
                {
                    i += 2
                    guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                    scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                }
                let scalar = Unicode.Scalar(scalarValue) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: out.append(e)  // \" \\ \/
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt16? {
        guard i + 4 <= bytes.count else { return nil }
        var v: UInt16 = 0
        for k in 0..<4 {
            let c = bytes[i + k]
            let d: UInt16
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt16(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt16(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt16(c - UInt8(ascii: "A") + 10)
            default: return nil
            }
            v = v << 4 | d
        }
        i += 4
        return v
    }

    /// Skips the string at the cursor without decoding it (escapes are stepped over; `\u` needs no check to find
    /// the closing quote); false when it does not end.
    mutating func skipString() -> Bool {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return false }
        i += 1
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return true
            }
            i += b == UInt8(ascii: "\\") ? 2 : 1
        }
        return false
    }

    /// Skips the value at the cursor (strings, nested objects and arrays to any depth, without recursion).
    mutating func skipValue() -> Bool {
        guard let c = peek else { return false }
        if c == UInt8(ascii: "\"") { return skipString() }
        guard c == UInt8(ascii: "{") || c == UInt8(ascii: "[") else { return skipScalar() }
        var depth = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                guard skipString() else { return false }
                continue
            }
            i += 1
            if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") {
                depth += 1
            } else if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                depth -= 1
                if depth == 0 { return true }
            }
        }
        return false
    }
}
