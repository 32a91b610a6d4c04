// Deterministic inputs for the cdfsync micro-benchmarks.
//
// Everything here is a pure function of its arguments (a SplitMix64 stream seeded by the caller), so every run,
// on every machine, measures the same bytes. Nothing here is measured: the benchmarks build their inputs in
// setup, before `benchmark.startMeasurement()`.

import CDFSyncCore
import CDFSyncStorage

/// SplitMix64: small, fast, and the same sequence everywhere.
public struct SplitMix64: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func pick<T>(_ values: [T]) -> T { values[Int(next() % UInt64(values.count))] }
}

/// A participant-panel change feed as `table_changes(...)` returns it: 16 participant columns followed by
/// `_change_type`, `_commit_version` and `_commit_timestamp`, every value a JSON string (or `null`), as the
/// Statement Execution API sends `JSON_ARRAY` results.
public enum ChangeFeedFixture {
    /// Column names in result order.
    public static let columns: [String] = [
        "participant_id", "first_name", "last_name", "email", "phone", "company", "country", "city", "job_title",
        "segment", "consent_status", "birth_year", "postal_code", "language", "notes", "last_updated_at",
        "_change_type", "_commit_version", "_commit_timestamp",
    ]
    /// Number of participant (non-CDF) columns.
    public static let participantColumnCount = 16
    public static let keyIndex = 0
    public static let changeTypeIndex = 16
    public static let versionIndex = 17

    static let firstNames = [
        "Aiko", "Amara", "Anders", "Ana", "Björn", "Carlos", "Chen", "Chloé", "Dmitri", "Elif", "Emma", "Fatima",
        "François", "Giulia", "Hana", "Hiroshi", "Ingrid", "Isabela", "Jakub", "James", "João", "Kwame", "Lars",
        "Leila", "Lucía", "Mateo", "Mei", "Nadia", "Noah", "Olga", "Priya", "Ravi", "Søren", "Yusuf", "Zoë", "Łukasz",
    ]
    static let lastNames = [
        "Abe", "Adeyemi", "Andersson", "Bauer", "Chen", "Costa", "Dubois", "Dvořák", "Fernández", "Garcia", "Haddad",
        "Hansen", "Ivanova", "Kowalski", "Kim", "Kumar", "López", "Müller", "Nakamura", "Nguyen", "Okafor", "O'Brien",
        "Patel", "Rossi", "Schmidt", "Silva", "Smith", "Tanaka", "Van der Berg", "Yilmaz", "Zhang",
    ]
    static let places: [(String, String, String)] = [
        ("US", "New York", "1"), ("GB", "London", "44"), ("DE", "München", "49"), ("FR", "Paris", "33"),
        ("ES", "Madrid", "34"), ("NL", "Amsterdam", "31"), ("DK", "København", "45"), ("PL", "Kraków", "48"),
        ("BR", "São Paulo", "55"), ("MX", "Ciudad de México", "52"), ("JP", "Tokyo", "81"), ("IN", "Bengaluru", "91"),
        ("AU", "Sydney", "61"), ("ZA", "Cape Town", "27"), ("TR", "İstanbul", "90"), ("CA", "Toronto", "1"),
    ]
    static let companies = [
        "Acme Analytics", "Blue Harbor Labs", "Northwind Health", "Contoso Research", "Fabrikam Foods", "Initech",
        "Umbrella Biotech", "Nordlicht GmbH", "Sakura Denki", "Maré Alta Ltda", "Kite & Key Studio", "Zenith Pharma",
    ]
    static let domains = ["example.com", "example.org", "mail.example.net", "panel.example.de", "example.co.uk"]
    static let jobs = [
        "Data Analyst", "Product Manager", "Software Engineer", "Research Scientist", "Nurse", "Teacher",
        "Marketing Lead", "UX Designer", "Accountant", "Consultant", "Student", "Architect",
    ]
    static let segments = ["consumer", "professional", "healthcare", "education", "smb", "enterprise"]
    static let languages = ["en", "de", "fr", "es", "pt-BR", "ja", "pl", "da", "nl", "tr"]
    static let sources = ["web", "referral", "panel-import", "mobile"]
    /// Free text as a JSON string body (already escaped); some need unescaping, as real free text does.
    static let notesJSON = [
        "", "prefers e-mail", "call after 5pm", #"said \"maybe later\""#, #"line one\nline two"#,
        #"caf\u00e9 owner"#, "VIP", #"tab\tseparated"#,
    ]

    /// Appends one JSON_ARRAY row (`[...]`) for participant `row` to `out`.
    ///
    /// Every row is an `insert` unless `changeType` says otherwise: a first full sync is all inserts, and the
    /// decoder's cost does not depend on the change type.
    public static func appendRow(
        _ row: Int, commitVersion: Int, changeType: String = "insert", rng: inout SplitMix64, to out: inout [UInt8]
    ) {
        func str(_ s: String) {
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: s.utf8)
            out.append(UInt8(ascii: "\""))
        }
        let first = rng.pick(firstNames)
        let last = rng.pick(lastNames)
        let place = rng.pick(places)
        out.append(UInt8(ascii: "["))
        str("P" + pad(row, 9))
        out.append(UInt8(ascii: ","))
        str(first)
        out.append(UInt8(ascii: ","))
        str(last)
        out.append(UInt8(ascii: ","))
        str(ascii(first) + "." + ascii(last).replacingOccurrences("'", "") + ".\(row)@" + rng.pick(domains))
        out.append(UInt8(ascii: ","))
        // About one phone in ten is missing.
        if rng.next() % 10 == 0 { out.append(contentsOf: "null".utf8) } else {
            str("+" + place.2 + pad(Int(rng.next() % 1_000_000_000), 9))
        }
        out.append(UInt8(ascii: ","))
        str(rng.pick(companies))
        out.append(UInt8(ascii: ","))
        str(place.0)
        out.append(UInt8(ascii: ","))
        str(place.1)
        out.append(UInt8(ascii: ","))
        str(rng.pick(jobs))
        out.append(UInt8(ascii: ","))
        str(rng.pick(segments))
        out.append(UInt8(ascii: ","))
        str(rng.next() % 10 < 8 ? "opted_in" : "opted_out")
        out.append(UInt8(ascii: ","))
        str(String(1940 + Int(rng.next() % 65)))
        out.append(UInt8(ascii: ","))
        str(pad(Int(rng.next() % 100_000), 5))
        out.append(UInt8(ascii: ","))
        str(rng.pick(languages))
        out.append(UInt8(ascii: ","))
        let note = rng.pick(notesJSON)
        if note.isEmpty && rng.next() % 2 == 0 { out.append(contentsOf: "null".utf8) } else { str(note) }
        out.append(UInt8(ascii: ","))
        str(timestamp(commitVersion, offsetSeconds: Int(rng.next() % 3600)))
        out.append(UInt8(ascii: ","))
        str(changeType)
        out.append(UInt8(ascii: ","))
        str(String(commitVersion))
        out.append(UInt8(ascii: ","))
        str(timestamp(commitVersion, offsetSeconds: 0))
        out.append(UInt8(ascii: "]"))
    }

    /// A bare `JSON_ARRAY` body (an `EXTERNAL_LINKS` file): `[[...],[...],...]` with `rows` rows.
    public static func bareArray(rows: Int, firstRow: Int = 0, commitVersion: Int = 1, seed: UInt64 = 42) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var out: [UInt8] = []
        out.reserveCapacity(rows * 360 + 2)
        out.append(UInt8(ascii: "["))
        for r in 0..<rows {
            if r > 0 { out.append(UInt8(ascii: ",")) }
            appendRow(firstRow + r, commitVersion: commitVersion, rng: &rng, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// A statement response with the rows inline (`INLINE` disposition, chunk 0), with `status`, `manifest`
    /// (schema, chunk list) and `result` members in the order the service sends them.
    public static func envelope(rows: Int, firstRow: Int = 0, commitVersion: Int = 1, seed: UInt64 = 42) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows * 360 + 4096)
        var head = #"{"statement_id":"01ef-bench-0000-0000-000000000001","status":{"state":"SUCCEEDED"},"#
        head += #""manifest":{"format":"JSON_ARRAY","schema":{"column_count":\#(columns.count),"columns":["#
        for (i, c) in columns.enumerated() {
            if i > 0 { head += "," }
            let type = c == "_commit_version" ? "LONG" : (c.hasSuffix("_at") || c == "_commit_timestamp" ? "TIMESTAMP" : "STRING")
            head += #"{"name":"\#(c)","type_text":"\#(type)","type_name":"\#(type)","position":\#(i)}"#
        }
        head += #"]},"total_chunk_count":1,"chunks":[{"chunk_index":0,"row_offset":0,"row_count":\#(rows)}],"#
        head += #""total_row_count":\#(rows),"truncated":false},"result":{"chunk_index":0,"row_offset":0,"#
        head += #""row_count":\#(rows),"data_array":"#
        out.append(contentsOf: head.utf8)
        out.append(contentsOf: bareArray(rows: rows, firstRow: firstRow, commitVersion: commitVersion, seed: seed))
        out.append(contentsOf: "}}".utf8)
        return out
    }

    static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    static func ascii(_ s: String) -> String {
        var out = ""
        for ch in s.lowercased().unicodeScalars {
            switch ch {
            case "a"..."z", "'", " ": out.unicodeScalars.append(ch)
            case "á", "ã", "à": out += "a"
            case "é", "è", "ë": out += "e"
            case "í", "ı", "i": out += "i"
            case "ó", "ö", "ø": out += "o"
            case "ú", "ü": out += "u"
            case "ç": out += "c"
            case "ř": out += "r"
            case "ł": out += "l"
            default: break
            }
        }
        return out.replacingOccurrences(" ", "")
    }

    /// `2026-01-05T09:00:00.000Z` plus `version` minutes and `offsetSeconds`.
    static func timestamp(_ version: Int, offsetSeconds: Int) -> String {
        let total = 9 * 3600 + version * 60 + offsetSeconds
        let h = (total / 3600) % 24, m = (total / 60) % 60, s = total % 60
        return "2026-01-05T" + pad(h, 2) + ":" + pad(m, 2) + ":" + pad(s, 2) + ".000Z"
    }
}

/// A change feed in which every row carries escaped text (`\"`, `\u00e9`, `\n`, `\t`, `\\`, a surrogate pair) in two
/// of its eight values: the decoder's unescaping path in every row, where the participant fixture takes it in a few.
public enum EscapeHeavyFixture {
    /// Columns per row: key, name, email, timestamp, `_change_type`, `_commit_version`, `_commit_timestamp`, note.
    public static let columnCount = 8

    /// A bare `JSON_ARRAY` body with `rows` rows.
    public static func bareArray(rows: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows * 200 + 2)
        out.append(UInt8(ascii: "["))
        let escaped = #"O\"Brien \u00e9\n\t\\ \ud83d\ude00 line"#
        for r in 0..<rows {
            if r > 0 { out.append(UInt8(ascii: ",")) }
            let change = r % 3 == 0 ? "insert" : "update_postimage"
            let note = r % 4 == 0 ? "null" : #""a note \"quoted\"\nover two lines""#
            let row = #"["\#(r)","\#(escaped)","person\#(r)@example.com","2024-11-08T15:20:17.922-08:00","#
                + #""\#(change)","\#(1000 + r / 100)","2024-11-08T15:20:17.000Z",\#(note)]"#
            out.append(contentsOf: row.utf8)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: Character, _ b: String) -> String {
        var out = ""
        for ch in self { if ch == a { out += b } else { out.append(ch) } }
        return out
    }
}

/// Panel changes and NDJSON as the engine produces them from the change feed.
public enum PanelFixture {
    /// Decodes `body` (a bare array) and builds one ``PanelStore/Change`` per insert/postimage row, the way the
    /// engine's change collector does: key = `participant_id`, version = `_commit_version`, record = compact JSON
    /// object of the 16 participant columns.
    public static func changes(fromBareArray body: [UInt8]) throws -> [PanelStore.Change] {
        var decoder = ResultStreamDecoder(layout: .bareArray, expectedColumnCount: ChangeFeedFixture.columns.count)
        var builder = RecordBuilder()
        var out: [PanelStore.Change] = []
        try body.withUnsafeBytes { raw in
            try decoder.feed(raw) { row in
                if let change = builder.change(row) { out.append(change) }
            }
        }
        _ = try decoder.finish()
        return out
    }

    /// `count` changes for keys `P<firstRow>…`, sorted by key (keys are zero-padded, so row order is key order).
    public static func changes(count: Int, firstRow: Int = 0, commitVersion: Int = 1, seed: UInt64 = 42) throws
        -> [PanelStore.Change]
    {
        try changes(
            fromBareArray: ChangeFeedFixture.bareArray(
                rows: count, firstRow: firstRow, commitVersion: commitVersion, seed: seed))
    }

    /// An NDJSON segment of outbox entries, as `PanelStore.deliver` writes them: one JSON object per line with
    /// `seq`, `op`, `participant_id`, `scope`, `external_id`, `commit_version` and `record`.
    public static func ndjson(records: Int, seed: UInt64 = 42) throws -> [UInt8] {
        let changes = try changes(count: records, seed: seed)
        var json = JSONWriter(reservingCapacity: 1024)
        var out: [UInt8] = []
        out.reserveCapacity(records * 520)
        for (i, c) in changes.enumerated() {
            json.reset()
            json.beginObject()
            json.key("seq")
            json.uint(UInt64(i + 1))
            json.key("op")
            json.string("insert")
            json.key("participant_id")
            json.uint(UInt64(i + 1))
            json.key("scope")
            json.string("main.bench.participants")
            json.key("external_id")
            json.string(c.externalID)
            json.key("commit_version")
            json.int(c.commitVersion)
            json.key("record")
            json.raw(c.record)
            json.endObject()
            out.append(contentsOf: json.bytes)
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }
}

/// Builds panel changes from decoded rows exactly as `ChangeCollector.process` does (kept in step by hand: the
/// collector is internal to CDFSyncEngine).
public struct RecordBuilder {
    private var json: [UInt8] = []
    private let keys: [[UInt8]]

    public init() {
        json.reserveCapacity(1024)
        keys = ChangeFeedFixture.columns.prefix(ChangeFeedFixture.participantColumnCount).map { name in
            var key: [UInt8] = []
            JSONWriter.appendEscaped(name, to: &key)
            return key
        }
    }

    /// The change for an `insert`/`update_postimage` row, or nil for any other row.
    public mutating func change(_ row: borrowing RowView) -> PanelStore.Change? {
        guard let version = row.int64(ChangeFeedFixture.versionIndex) else { return nil }
        let keep: Bool =
            row.withValue(ChangeFeedFixture.changeTypeIndex) { v in
                v.elementsEqual("insert".utf8) || v.elementsEqual("update_postimage".utf8)
            } ?? false
        guard keep, let key = row.string(ChangeFeedFixture.keyIndex) else { return nil }
        json.removeAll(keepingCapacity: true)
        json.append(UInt8(ascii: "{"))
        for (i, k) in keys.enumerated() {
            if i > 0 { json.append(UInt8(ascii: ",")) }
            json.append(contentsOf: k)
            json.append(UInt8(ascii: ":"))
            let wrote: Bool? = row.withValue(i) { v in
                JSONWriter.appendEscaped(utf8: v, to: &json)
                return true
            }
            if wrote == nil { json.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C]) }
        }
        json.append(UInt8(ascii: "}"))
        return PanelStore.Change(externalID: key, commitVersion: version, record: json)
    }
}
