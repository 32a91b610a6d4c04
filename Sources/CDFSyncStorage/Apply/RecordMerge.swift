/// The record of a participant that several source keys feed (a key linked by email or phone), field by field.
///
/// Each source key keeps its own latest record (``LinkedRecords``), stamped with the outbox sequence of the change
/// that wrote it — the order the engine applied them: within one pipeline by commit version, then source order;
/// across pipelines, the order their syncs ran. The participant's record is these records folded oldest to newest
/// (docs/pipelines.md, "Several source keys, one participant"):
/// - a field takes the value of the newest record that has a non-null value for it; a newer record's `null` (or a
///   field it lacks) never erases what another key supplied; a field every record has null stays null;
/// - `attributes` (`properties` for events) merge the same way, attribute by attribute;
/// - `external_id` is the participant's first source key's, whichever key changed;
/// - consent: withdrawal wins. `contactable` is `true` only when every key's latest record is contactable, and while
///   one is not, `consent_status` is the newest not-contactable record's value.
/// Fields keep the position they first had in that fold. The result depends only on each key's latest record and
/// their order, never on how a run was split into batches.
enum RecordMerge {
    /// One source key's latest record.
    struct Source {
        /// When it was applied (outbox sequence; 0 for a record that predates the key's stamp).
        var stamp: UInt64
        var record: [UInt8]
        /// Whether this is the participant's first source key.
        var isFirst: Bool
    }

    static let externalID = Array("\"external_id\"".utf8)
    static let contactable = Array("\"contactable\"".utf8)
    static let consentStatus = Array("\"consent_status\"".utf8)
    static let nested = [Array("\"attributes\"".utf8), Array("\"properties\"".utf8)]
    static let null = Array("null".utf8)
    static let falseLiteral = Array("false".utf8)

    /// The merged record of `sources` (in any order; ties of stamp keep the given order), or nil when one of them
    /// is not a JSON object this reader can take apart (the caller then keeps the newest record as it is).
    static func merge(_ sources: [Source]) -> [UInt8]? {
        let ordered = sources.enumerated().sorted { a, b in
            a.element.stamp != b.element.stamp ? a.element.stamp < b.element.stamp : a.offset < b.offset
        }.map(\.element)
        var fields = OrderedMembers()
        var firstExternalID: [UInt8]?
        var anyWithdrawn = false
        var withdrawnConsent: [UInt8]?
        for source in ordered {
            guard let members = JSONMembers.parse(source.record) else { return nil }
            var withdrawn = false
            for (key, value) in members where key == contactable && value == falseLiteral { withdrawn = true }
            for (key, value) in members {
                if key == externalID, source.isFirst { firstExternalID = value }
                if key == contactable {
                    // Set below from every record: `false` as soon as one is.
                    fields.set(key, value, keepNonNull: false, position: true)
                    continue
                }
                if nested.contains(key), let inner = JSONMembers.parse(value) {
                    var merged = fields.value(key).flatMap(JSONMembers.parse).map(OrderedMembers.init) ?? OrderedMembers()
                    for (k, v) in inner { merged.set(k, v) }
                    fields.set(key, merged.json, keepNonNull: false)
                    continue
                }
                fields.set(key, value)
                if withdrawn, key == consentStatus, value != null { withdrawnConsent = value }
            }
            if withdrawn { anyWithdrawn = true }
        }
        if fields.value(contactable) != nil {
            fields.set(contactable, anyWithdrawn ? falseLiteral : Array("true".utf8), keepNonNull: false)
        }
        if anyWithdrawn, let withdrawnConsent { fields.set(consentStatus, withdrawnConsent, keepNonNull: false) }
        if let firstExternalID { fields.set(externalID, firstExternalID, keepNonNull: false) }
        return fields.json
    }

    /// Object members in the order they were first set.
    struct OrderedMembers {
        private(set) var members: [(key: [UInt8], value: [UInt8])] = []
        private var index: [[UInt8]: Int] = [:]

        init() {}

        init(_ members: [(key: [UInt8], value: [UInt8])]) {
            for (k, v) in members { set(k, v, keepNonNull: false) }
        }

        func value(_ key: [UInt8]) -> [UInt8]? { index[key].map { members[$0].value } }

        /// Sets `key` to `value`; with `keepNonNull`, a `null` does not replace a value already there.
        /// `position` only makes sure the key has its place (a null placeholder when new).
        mutating func set(_ key: [UInt8], _ value: [UInt8], keepNonNull: Bool = true, position: Bool = false) {
            if let i = index[key] {
                if position || (keepNonNull && value == RecordMerge.null) { return }
                members[i].value = value
            } else {
                index[key] = members.count
                members.append((key, position ? RecordMerge.null : value))
            }
        }

        var json: [UInt8] {
            var out: [UInt8] = [UInt8(ascii: "{")]
            for (i, m) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out += m.key
                out.append(UInt8(ascii: ":"))
                out += m.value
            }
            out.append(UInt8(ascii: "}"))
            return out
        }
    }
}

/// Takes a JSON object apart into its members (key with its quotes, value), as bytes, without decoding them.
enum JSONMembers {
    /// The members of the object `bytes`, or nil when it is not one JSON object (whitespace allowed between
    /// tokens, none kept). Nesting is bounded (64 levels).
    static func parse(_ bytes: [UInt8]) -> [(key: [UInt8], value: [UInt8])]? {
        bytes.withUnsafeBufferPointer { b -> [(key: [UInt8], value: [UInt8])]? in
            var i = skipSpace(b, 0)
            guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
            i = skipSpace(b, i + 1)
            var out: [(key: [UInt8], value: [UInt8])] = []
            if i < b.count, b[i] == UInt8(ascii: "}") {
                return skipSpace(b, i + 1) == b.count ? out : nil
            }
            while true {
                guard i < b.count, b[i] == UInt8(ascii: "\""), let keyEnd = endOfString(b, i) else { return nil }
                let key = Array(b[i..<keyEnd])
                i = skipSpace(b, keyEnd)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                i = skipSpace(b, i + 1)
                guard let valueEnd = endOfValue(b, i, depth: 0) else { return nil }
                out.append((key, Array(b[i..<valueEnd])))
                i = skipSpace(b, valueEnd)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: ",") {
                    i = skipSpace(b, i + 1)
                } else if b[i] == UInt8(ascii: "}") {
                    return skipSpace(b, i + 1) == b.count ? out : nil
                } else {
                    return nil
                }
            }
        }
    }

    private static func skipSpace(_ b: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int {
        var i = start
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        return i
    }

    /// The index after the closing quote of the string starting at `start`.
    private static func endOfString(_ b: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int? {
        var i = start + 1
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): return i + 1
            default: i += 1
            }
        }
        return nil
    }

    /// The index after the value starting at `start`.
    private static func endOfValue(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, depth: Int) -> Int? {
        guard start < b.count, depth < 64 else { return nil }
        switch b[start] {
        case UInt8(ascii: "\""):
            return endOfString(b, start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = b[start] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = close == UInt8(ascii: "}")
            var i = skipSpace(b, start + 1)
            if i < b.count, b[i] == close { return i + 1 }
            while true {
                if isObject {
                    guard i < b.count, b[i] == UInt8(ascii: "\""), let k = endOfString(b, i) else { return nil }
                    i = skipSpace(b, k)
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                    i = skipSpace(b, i + 1)
                }
                guard let e = endOfValue(b, i, depth: depth + 1) else { return nil }
                i = skipSpace(b, e)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: ",") {
                    i = skipSpace(b, i + 1)
                } else if b[i] == close {
                    return i + 1
                } else {
                    return nil
                }
            }
        default:
            // A number or a literal: up to the next delimiter.
            var i = start
            while i < b.count, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "}"), b[i] != UInt8(ascii: "]"),
                b[i] != 0x20, b[i] != 0x0A, b[i] != 0x0D, b[i] != 0x09
            {
                i += 1
            }
            return i > start ? i : nil
        }
    }
}
