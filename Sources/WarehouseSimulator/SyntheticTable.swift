import Foundation
import NIOCore

/// A large participant-panel table generated from a seed, never materialised.
///
/// v0 is `CREATE TABLE` with change data feed enabled, v1 is a `WRITE` inserting `rows` rows, and every
/// later version is a generated `MERGE` that updates a deterministic subset of the rows (and may insert
/// and delete some). A row's content is a pure function of (seed, row index, revision), where the
/// revision is the last version that wrote it. Each version keeps only the indices it touched, so
/// table_changes enumerates exactly those rows and a snapshot walks the index space.
struct SyntheticTable: Sendable {
    /// The participant-panel columns every synthetic table has.
    static let columns: [ColumnDef] = [
        ColumnDef(name: "participant_id", type: "STRING", nullable: false),
        ColumnDef(name: "first_name", type: "STRING"),
        ColumnDef(name: "last_name", type: "STRING"),
        ColumnDef(name: "email", type: "STRING"),
        ColumnDef(name: "phone", type: "STRING"),
        ColumnDef(name: "company", type: "STRING"),
        ColumnDef(name: "country", type: "STRING"),
        ColumnDef(name: "city", type: "STRING"),
        ColumnDef(name: "job_title", type: "STRING"),
        ColumnDef(name: "segment", type: "STRING"),
        ColumnDef(name: "consent_status", type: "STRING"),
        ColumnDef(name: "last_updated_at", type: "TIMESTAMP"),
    ]

    struct Version: Sendable {
        var version: Int
        var timestampMillis: Int64
        var operation: String
        /// Rows `insertStart ..< insertStart + insertCount` are inserted by this version.
        var insertStart: Int
        var insertCount: Int
        /// Update candidates: row `(offset + j * stride) % modulus` for `j < candidateCount`.
        var modulus: UInt64
        var offset: UInt64
        var stride: UInt64
        var inverse: UInt64
        var candidateCount: UInt64
        /// Rows actually updated (candidates that were live), in candidate order.
        var updates: [Int32]
        /// Rows deleted by this version, ascending.
        var deletes: [Int32]

        func isCandidate(_ row: Int) -> Bool {
            let r = UInt64(row)
            guard candidateCount > 0, r < modulus else { return false }
            let j = ((r &+ modulus &- offset) % modulus) &* inverse % modulus
            return j < candidateCount
        }
    }

    var seed: UInt64
    var versions: [Version] = []
    /// Row index → the version that deleted it.
    var deletedAt: [Int32: Int32] = [:]
    /// Total rows ever inserted.
    var totalRows: Int = 0

    init(spec: SyntheticSpec) throws {
        seed = spec.seed
        guard spec.rows < Int(Int32.max) else { throw WorkspaceError("synthetic table too large (max \(Int32.max) rows)") }
        let start = try Timestamp.parseMillis(spec.startTimestamp ?? "2026-01-05T09:00:00.000Z")
        versions.append(Self.emptyVersion(0, start, "CREATE TABLE"))
        var v1 = Self.emptyVersion(1, start + 60_000, "WRITE")
        v1.insertCount = spec.rows
        versions.append(v1)
        totalRows = spec.rows
        for _ in 0..<spec.updateVersions {
            try appendCommit(updateFraction: spec.updateFraction, insertRows: 0, deleteFraction: 0, timestampMillis: nil)
        }
    }

    static func emptyVersion(_ v: Int, _ ts: Int64, _ op: String) -> Version {
        Version(
            version: v, timestampMillis: ts, operation: op, insertStart: 0, insertCount: 0, modulus: 1, offset: 0,
            stride: 1, inverse: 1, candidateCount: 0, updates: [], deletes: [])
    }

    var latestVersion: Int { versions.count - 1 }

    var versionInfos: [VersionInfo] {
        versions.map { v in
            VersionInfo(
                version: v.version, timestampMillis: v.timestampMillis, operation: v.operation,
                userName: TableState.defaultUser,
                properties: ["delta.enableChangeDataFeed": "true"],
                insertCount: v.insertCount, updateCount: v.updates.count, deleteCount: v.deletes.count)
        }
    }

    /// Appends a generated commit (a `MERGE` when it updates or deletes, a `WRITE` when it only inserts).
    mutating func appendCommit(
        updateFraction: Double, insertRows: Int, deleteFraction: Double, timestampMillis: Int64?
    ) throws {
        guard (0...1).contains(updateFraction), (0...1).contains(deleteFraction), insertRows >= 0 else {
            throw WorkspaceError("update_fraction and delete_fraction must be within 0...1, insert_rows >= 0")
        }
        guard totalRows + insertRows < Int(Int32.max) else { throw WorkspaceError("synthetic table too large") }
        let vnum = versions.count
        let ts = timestampMillis ?? (versions[vnum - 1].timestampMillis + 60_000)
        guard ts > versions[vnum - 1].timestampMillis else {
            throw WorkspaceError("timestamp must be after the latest commit")
        }
        let m = totalRows
        let live = m - deletedAt.count
        var v = Self.emptyVersion(vnum, ts, (updateFraction > 0 || deleteFraction > 0) ? "MERGE" : "WRITE")
        // Deletes: an affine walk over the index space, skipping rows already gone.
        var deletes: [Int32] = []
        let deleteTarget = Int((Double(live) * deleteFraction).rounded())
        if deleteTarget > 0 {
            let (off, stride, _) = Self.permutation(modulus: UInt64(m), seed: mix(seed, UInt64(vnum), 0xDE1E7E))
            var j: UInt64 = 0
            while deletes.count < deleteTarget && j < UInt64(m) {
                let r = Int32((off &+ j &* stride) % UInt64(m))
                j += 1
                if deletedAt[r] == nil {
                    deletes.append(r)
                    deletedAt[r] = Int32(vnum)
                }
            }
        }
        // Updates: the first `candidateCount` rows of another affine walk, minus deleted rows.
        let count = UInt64((Double(live) * updateFraction).rounded())
        if count > 0 && m > 0 {
            let (off, stride, inv) = Self.permutation(modulus: UInt64(m), seed: mix(seed, UInt64(vnum), 0x0FDA7E))
            v.modulus = UInt64(m)
            v.offset = off
            v.stride = stride
            v.inverse = inv
            v.candidateCount = min(count, UInt64(m))
            var ups: [Int32] = []
            ups.reserveCapacity(Int(v.candidateCount))
            for j in 0..<v.candidateCount {
                let r = Int32((off &+ j &* stride) % UInt64(m))
                if deletedAt[r] == nil { ups.append(r) }
            }
            v.updates = ups
        }
        v.deletes = deletes.sorted()
        v.insertStart = m
        v.insertCount = insertRows
        totalRows = m + insertRows
        versions.append(v)
    }

    /// An offset, a stride coprime to `modulus`, and the stride's inverse modulo `modulus`.
    static func permutation(modulus m: UInt64, seed: UInt64) -> (UInt64, UInt64, UInt64) {
        guard m > 1 else { return (0, 1, 1) }
        let off = seed % m
        var s = (mix(seed, 1, 2) % (m - 1)) + 1
        while gcd(s, m) != 1 { s = s + 1 == m ? 1 : s + 1 }
        return (off, s, modInverse(s, m))
    }

    static func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 { b == 0 ? a : gcd(b, a % b) }

    static func modInverse(_ a: UInt64, _ m: UInt64) -> UInt64 {
        var (t, newT): (Int64, Int64) = (0, 1)
        var (r, newR): (Int64, Int64) = (Int64(m), Int64(a))
        while newR != 0 {
            let q = r / newR
            (t, newT) = (newT, t - q * newT)
            (r, newR) = (newR, r - q * newR)
        }
        if t < 0 { t += Int64(m) }
        return UInt64(t)
    }

    /// The last version at or before `v` that wrote `row` (which must exist at `v`).
    func revision(of row: Int, atOrBefore v: Int) -> Int {
        keys.withUnsafeBufferPointer { Self.revision(of: row, atOrBefore: v, $0) }
    }

    @inline(__always)
    static func revision(of row: Int, atOrBefore v: Int, _ keys: UnsafeBufferPointer<VersionKey>) -> Int {
        var u = v
        while u >= 2 {
            let k = keys[u]
            if row &- k.insertStart < k.insertCount && row >= k.insertStart { return u }
            if k.isCandidate(row) { return u }
            u -= 1
        }
        return 1  // not touched since the initial load
    }

    /// The reference-free part of every version, for rendering loops.
    var keys: [VersionKey] {
        versions.map {
            VersionKey(
                insertStart: $0.insertStart, insertCount: $0.insertCount, modulus: $0.modulus, offset: $0.offset,
                inverse: $0.inverse, candidateCount: $0.candidateCount)
        }
    }

    func snapshotSource(version: Int, projection: [Int]? = nil) -> SyntheticSnapshot {
        var inserted = 0
        var deleted: [Int32] = []
        if version >= 1 {
            for v in versions[1...version] {
                inserted = max(inserted, v.insertStart + v.insertCount)
                deleted.append(contentsOf: v.deletes)
            }
        }
        deleted.sort()
        return SyntheticSnapshot(
            seed: seed, keys: keys, version: version, rowSpace: inserted, deleted: deleted,
            projection: projection ?? Array(0..<Self.columns.count), stamps: timestampTexts())
    }

    func changesSource(from: Int, to: Int, projection: [Int]? = nil) -> SyntheticChanges {
        var segments: [SyntheticChanges.Segment] = []
        var ups: [Int32] = []
        var dels: [Int32] = []
        var total = 0
        if from <= to {
            for v in from...to {
                let ver = versions[v]
                let n = ver.insertCount + 2 * ver.updates.count + ver.deletes.count
                guard n > 0 else { continue }
                segments.append(
                    .init(
                        version: v, start: total, insertStart: ver.insertStart, insertCount: ver.insertCount,
                        updatesOffset: ups.count, updatesCount: ver.updates.count, deletesOffset: dels.count,
                        deletesCount: ver.deletes.count))
                ups.append(contentsOf: ver.updates)
                dels.append(contentsOf: ver.deletes)
                total += n
            }
        }
        return SyntheticChanges(
            seed: seed, keys: keys, segments: segments, updates: ups, deletes: dels, count: total,
            projection: projection ?? Array(0..<(Self.columns.count + 3)), stamps: timestampTexts())
    }

    /// The timestamp text of every version, 24 bytes each.
    func timestampTexts() -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(24 * versions.count)
        for v in versions { Timestamp.append(millis: v.timestampMillis, to: &b) }
        return b
    }
}

@inline(__always)
func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64 = 0) -> UInt64 {
    var z = a &+ b &* 0x9E37_79B9_7F4A_7C15 &+ c &* 0xD1B5_4A32_D192_ED03
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Vocabulary for generated rows. No value contains `"`, `\`, `,` or control characters, so values
/// are written without escaping in both JSON and CSV.
enum Vocabulary {
    static let firstNames: [[UInt8]] = [
        "Aiko", "Amara", "Anders", "Ana", "Björn", "Carlos", "Chen", "Chloé", "Dmitri", "Elif", "Emma", "Fatima",
        "François", "Giulia", "Hana", "Hiroshi", "Ingrid", "Isabela", "Jakub", "James", "Jana", "João", "Kwame",
        "Lars", "Leila", "Liam", "Lucía", "Mateo", "Mei", "Mohammed", "Nadia", "Noah", "Olga", "Olivia", "Pedro",
        "Priya", "Rafael", "Ravi", "Sakura", "Santiago", "Sofia", "Søren", "Tomás", "Yara", "Yusuf", "Zanele",
        "Zoë", "Łukasz",
    ].map { Array($0.utf8) }
    /// ASCII forms of `firstNames` for e-mail addresses, index for index.
    static let firstNamesASCII: [[UInt8]] = [
        "aiko", "amara", "anders", "ana", "bjorn", "carlos", "chen", "chloe", "dmitri", "elif", "emma", "fatima",
        "francois", "giulia", "hana", "hiroshi", "ingrid", "isabela", "jakub", "james", "jana", "joao", "kwame",
        "lars", "leila", "liam", "lucia", "mateo", "mei", "mohammed", "nadia", "noah", "olga", "olivia", "pedro",
        "priya", "rafael", "ravi", "sakura", "santiago", "sofia", "soren", "tomas", "yara", "yusuf", "zanele",
        "zoe", "lukasz",
    ].map { Array($0.utf8) }
    static let lastNames: [[UInt8]] = [
        "Abe", "Adeyemi", "Almeida", "Andersson", "Bauer", "Becker", "Chen", "Costa", "Dubois", "Dvořák", "Eriksen",
        "Fernández", "Garcia", "Haddad", "Hansen", "Ivanova", "Jensen", "Kowalski", "Kim", "Kumar", "Larsen",
        "López", "Martin", "Müller", "Nakamura", "Nguyen", "Novak", "Okafor", "O'Brien", "Papadopoulos", "Patel",
        "Pereira", "Rossi", "Sato", "Schmidt", "Silva", "Smith", "Tanaka", "Van der Berg", "Wang", "Yilmaz",
        "Zhang",
    ].map { Array($0.utf8) }
    static let lastNamesASCII: [[UInt8]] = [
        "abe", "adeyemi", "almeida", "andersson", "bauer", "becker", "chen", "costa", "dubois", "dvorak", "eriksen",
        "fernandez", "garcia", "haddad", "hansen", "ivanova", "jensen", "kowalski", "kim", "kumar", "larsen",
        "lopez", "martin", "muller", "nakamura", "nguyen", "novak", "okafor", "obrien", "papadopoulos", "patel",
        "pereira", "rossi", "sato", "schmidt", "silva", "smith", "tanaka", "vanderberg", "wang", "yilmaz",
        "zhang",
    ].map { Array($0.utf8) }
    /// (ISO country, city, calling code)
    static let places: [([UInt8], [UInt8], [UInt8])] = [
        ("US", "New York", "1"), ("US", "Chicago", "1"), ("CA", "Toronto", "1"), ("GB", "London", "44"),
        ("GB", "Manchester", "44"), ("DE", "Berlin", "49"), ("DE", "München", "49"), ("FR", "Paris", "33"),
        ("FR", "Lyon", "33"), ("ES", "Madrid", "34"), ("IT", "Milano", "39"), ("NL", "Amsterdam", "31"),
        ("SE", "Stockholm", "46"), ("DK", "København", "45"), ("NO", "Oslo", "47"), ("PL", "Kraków", "48"),
        ("CZ", "Praha", "420"), ("BR", "São Paulo", "55"), ("MX", "Ciudad de México", "52"),
        ("AR", "Buenos Aires", "54"), ("JP", "Tokyo", "81"), ("JP", "Osaka", "81"), ("KR", "Seoul", "82"),
        ("CN", "Shanghai", "86"), ("IN", "Bengaluru", "91"), ("IN", "Mumbai", "91"), ("SG", "Singapore", "65"),
        ("AU", "Sydney", "61"), ("NZ", "Auckland", "64"), ("ZA", "Cape Town", "27"), ("NG", "Lagos", "234"),
        ("KE", "Nairobi", "254"), ("TR", "İstanbul", "90"), ("AE", "Dubai", "971"), ("EG", "Cairo", "20"),
    ].map { (Array($0.0.utf8), Array($0.1.utf8), Array($0.2.utf8)) }
    static let companies: [[UInt8]] = [
        "Acme Analytics", "Blue Harbor Labs", "Northwind Health", "Contoso Research", "Fabrikam Foods",
        "Globex Energy", "Initech", "Umbrella Biotech", "Stark Mobility", "Wayne Logistics", "Tyrell Systems",
        "Hooli", "Vandelay Imports", "Soylent Nutrition", "Cyberdyne Robotics", "Aperture Science",
        "Nordlicht GmbH", "Sakura Denki", "Maré Alta Ltda", "Lumière Conseil", "Baobab Ventures",
        "Kite & Key Studio", "Polaris Insurance", "Zenith Pharma",
    ].map { Array($0.utf8) }
    static let domains: [[UInt8]] = [
        "example.com", "example.org", "mail.example.net", "research.example.com", "panel.example.de",
        "example.co.uk", "example.fr", "example.jp",
    ].map { Array($0.utf8) }
    static let jobTitles: [[UInt8]] = [
        "Data Analyst", "Product Manager", "Software Engineer", "Research Scientist", "Nurse", "Teacher",
        "Marketing Lead", "Operations Manager", "UX Designer", "Accountant", "Sales Director", "Pharmacist",
        "Civil Engineer", "Consultant", "Student", "Architect", "Chef", "Journalist",
    ].map { Array($0.utf8) }
    static let segments: [[UInt8]] = ["consumer", "professional", "healthcare", "education", "smb", "enterprise"]
        .map { Array($0.utf8) }
    static let optedIn = Array("opted_in".utf8)
    static let optedOut = Array("opted_out".utf8)
    static let changeTypes: [[UInt8]] = ["insert", "update_preimage", "update_postimage", "delete"].map {
        Array($0.utf8)
    }
}

/// The vocabulary packed into one immutable allocation so rendering touches no reference counts.
final class VocabBlob: @unchecked Sendable {
    // @unchecked: written once in init, read-only afterwards; the memory is never freed (process lifetime).
    /// A list of strings: `count` entries starting at `first` in `offsets`/`lengths`.
    struct List {
        var first: Int
        var count: Int
    }

    let bytes: UnsafeMutablePointer<UInt8>
    let offsets: UnsafeMutablePointer<Int32>
    let lengths: UnsafeMutablePointer<Int32>
    let firstNames, firstNamesASCII, lastNames, lastNamesASCII, countries, cities, callingCodes, companies, domains,
        jobTitles, segments, consent, changeTypes: List

    static let shared = VocabBlob()

    private init() {
        var blob: [UInt8] = []
        var offs: [Int32] = []
        var lens: [Int32] = []
        func add(_ values: [[UInt8]]) -> List {
            let l = List(first: offs.count, count: values.count)
            for v in values {
                offs.append(Int32(blob.count))
                lens.append(Int32(v.count))
                blob.append(contentsOf: v)
            }
            return l
        }
        firstNames = add(Vocabulary.firstNames)
        firstNamesASCII = add(Vocabulary.firstNamesASCII)
        lastNames = add(Vocabulary.lastNames)
        lastNamesASCII = add(Vocabulary.lastNamesASCII)
        countries = add(Vocabulary.places.map(\.0))
        cities = add(Vocabulary.places.map(\.1))
        callingCodes = add(Vocabulary.places.map(\.2))
        companies = add(Vocabulary.companies)
        domains = add(Vocabulary.domains)
        jobTitles = add(Vocabulary.jobTitles)
        segments = add(Vocabulary.segments)
        consent = add([Vocabulary.optedIn, Vocabulary.optedOut])
        changeTypes = add(Vocabulary.changeTypes)
        bytes = .allocate(capacity: blob.count)
        bytes.initialize(from: blob, count: blob.count)
        offsets = .allocate(capacity: offs.count)
        offsets.initialize(from: offs, count: offs.count)
        lengths = .allocate(capacity: lens.count)
        lengths.initialize(from: lens, count: lens.count)
    }

    /// Appends entry `i` of `list` (no capacity check: the caller reserved room).
    @inline(__always)
    func put(_ list: List, _ i: Int, _ out: inout RowWriter) {
        let k = list.first + i
        out.bytes(UnsafeRawPointer(bytes + Int(offsets[k])), Int(lengths[k]))
    }
}

/// Picks an index in `0..<n` from 64 random bits without a division.
@inline(__always)
func pick(_ x: UInt64, _ n: Int) -> Int { Int(truncatingIfNeeded: x.multipliedFullWidth(by: UInt64(n)).high) }

/// What `revision(of:atOrBefore:)` needs of a version, without references.
struct VersionKey: Sendable {
    var insertStart: Int
    var insertCount: Int
    var modulus: UInt64
    var offset: UInt64
    var inverse: UInt64
    var candidateCount: UInt64

    @inline(__always)
    func isCandidate(_ row: Int) -> Bool {
        let r = UInt64(row)
        guard candidateCount > 0, r < modulus else { return false }
        let j = ((r &+ modulus &- offset) % modulus) &* inverse % modulus
        return j < candidateCount
    }
}

/// Writes generated cells; shared by the snapshot and change sources.
///
/// A row's fixed fields come from `h = mix(seed, row)`, its changeable ones from `r = mix(seed, row, rev)`.
struct SyntheticRenderer {
    let vocab = VocabBlob.shared
    let seed: UInt64
    /// `stamps[24 * v ..< 24 * v + 24]` is the timestamp text of version v.
    let stamps: UnsafeRawBufferPointer
    /// Upper bound of one rendered row in bytes.
    static let maxRowBytes = 512

    @inline(__always)
    func cell(_ col: Int, row: Int, h: UInt64, r: UInt64, rev: Int, out: inout RowWriter) {
        let v = vocab
        switch col {
        case 0:
            out.byte(UInt8(ascii: "P"))
            if row < 1_000_000_000 { out.padded(row, width: 9) } else { out.decimal(row) }
        case 1: v.put(v.firstNames, pick(h, v.firstNames.count), &out)
        case 2: v.put(v.lastNames, pick(h &<< 17 | h &>> 47, v.lastNames.count), &out)
        case 3:
            v.put(v.firstNamesASCII, pick(h, v.firstNames.count), &out)
            out.byte(UInt8(ascii: "."))
            v.put(v.lastNamesASCII, pick(h &<< 17 | h &>> 47, v.lastNames.count), &out)
            out.byte(UInt8(ascii: "."))
            out.decimal(row)
            out.byte(UInt8(ascii: "@"))
            // Most revisions keep the address's domain; about one in four moves it.
            v.put(v.domains, (r & 3) == 0 ? pick(r &<< 7, v.domains.count) : pick(h &<< 40 | h &>> 24, v.domains.count), &out)
        case 4:
            out.byte(UInt8(ascii: "+"))
            v.put(v.callingCodes, pick(h &<< 31 | h &>> 33, v.countries.count), &out)
            let n = (r & 0x70) == 0 ? (r &>> 20) : (h &>> 20)
            out.padded(Int(n % 1_000_000_000), width: 9)
        case 5: v.put(v.companies, pick(h &<< 47 | h &>> 17, v.companies.count), &out)
        case 6: v.put(v.countries, pick(h &<< 31 | h &>> 33, v.countries.count), &out)
        case 7: v.put(v.cities, pick(h &<< 31 | h &>> 33, v.countries.count), &out)
        case 8: v.put(v.jobTitles, pick(r &<< 13 | r &>> 51, v.jobTitles.count), &out)
        case 9: v.put(v.segments, pick(r &<< 29 | r &>> 35, v.segments.count), &out)
        case 10: v.put(v.consent, pick(r &<< 43 | r &>> 21, 10) < 8 ? 0 : 1, &out)
        default: out.bytes(stamps.baseAddress! + 24 * rev, 24)
        }
    }

    /// Appends one row, preceded by a comma when `separated`: the projected table columns plus, for change rows,
    /// the CDF columns. Writes at most `maxRowBytes` bytes.
    @inline(__always)
    func row(
        _ row: Int, rev: Int, change: Int, commitVersion: Int, projection: UnsafeBufferPointer<Int>, csv: Bool,
        separated: Bool = false, out: inout RowWriter
    ) {
        let h = mix(seed, UInt64(row))
        let r = mix(seed, UInt64(row), UInt64(rev) &+ 7)
        if separated { out.byte(UInt8(ascii: ",")) }
        if !csv { out.byte(UInt8(ascii: "[")) }
        var first = true
        for col in projection {
            if !first { out.byte(UInt8(ascii: ",")) }
            first = false
            if !csv { out.byte(UInt8(ascii: "\"")) }
            switch col {
            case 12: vocab.put(vocab.changeTypes, change, &out)
            case 13: out.decimal(commitVersion)
            case 14: out.bytes(stamps.baseAddress! + 24 * commitVersion, 24)
            default: cell(col, row: row, h: h, r: r, rev: rev, out: &out)
            }
            if !csv { out.byte(UInt8(ascii: "\"")) }
        }
        if csv { out.bytes("\r\n") } else { out.byte(UInt8(ascii: "]")) }
    }

    /// Appends one row to `out` (see `row(_:rev:change:commitVersion:projection:csv:separated:out:)`).
    @inline(__always)
    func row(
        _ row: Int, rev: Int, change: Int, commitVersion: Int, projection: UnsafeBufferPointer<Int>, csv: Bool,
        separated: Bool, into out: inout ByteBuffer
    ) {
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.maxRowBytes + 1) { raw in
            var w = RowWriter(raw.baseAddress!)
            self.row(
                row, rev: rev, change: change, commitVersion: commitVersion, projection: projection, csv: csv,
                separated: separated, out: &w)
            return w.count
        }
    }

    func text(_ col: Int, row: Int, rev: Int, change: Int, commitVersion: Int) -> String {
        let p = [col]
        let bytes = [UInt8](unsafeUninitializedCapacity: Self.maxRowBytes) { buffer, count in
            var w = RowWriter(UnsafeMutableRawPointer(buffer.baseAddress!))
            p.withUnsafeBufferPointer {
                self.row(row, rev: rev, change: change, commitVersion: commitVersion, projection: $0, csv: true, out: &w)
            }
            count = w.count
        }
        // Drop the CRLF.
        return String(decoding: bytes.dropLast(2), as: UTF8.self)
    }

    /// Runs `body` with a renderer over `stamps` (24 bytes per version).
    static func with<T>(seed: UInt64, stamps: [UInt8], _ body: (SyntheticRenderer) -> T) -> T {
        stamps.withUnsafeBytes { body(SyntheticRenderer(seed: seed, stamps: $0)) }
    }
}

/// A synthetic table's rows at one version.
struct SyntheticSnapshot: RowSource {
    var seed: UInt64
    var keys: [VersionKey]
    var version: Int
    /// Rows `0 ..< rowSpace` have been inserted by `version`.
    var rowSpace: Int
    /// Rows deleted by `version`, ascending.
    var deleted: [Int32]
    var projection: [Int]
    var stamps: [UInt8]

    var count: Int { rowSpace - deleted.count }
    var estimatedBytesPerRow: Int { 24 + projection.count * 16 }

    /// The row index of the `k`-th live row, and the position in `deleted` after it.
    func locate(_ k: Int) -> (Int, Int) {
        var i = k
        var d = 0
        while d < deleted.count && Int(deleted[d]) <= i {
            i += 1
            d += 1
        }
        return (i, d)
    }

    func walk(_ range: Range<Int>, _ body: (Int) -> Void) {
        guard !range.isEmpty else { return }
        var (i, d) = locate(range.lowerBound)
        for _ in range {
            while d < deleted.count && Int(deleted[d]) == i {
                i += 1
                d += 1
            }
            body(i)
            i += 1
        }
    }

    func renderJSON(_ range: Range<Int>, into out: inout ByteBuffer) { render(range, csv: false, &out) }
    func renderCSV(_ range: Range<Int>, into out: inout ByteBuffer) { render(range, csv: true, &out) }

    private func render(_ range: Range<Int>, csv: Bool, _ out: inout ByteBuffer) {
        out.reserveCapacity(minimumWritableBytes: range.count * estimatedBytesPerRow)
        var first = true
        SyntheticRenderer.with(seed: seed, stamps: stamps) { renderer in
            projection.withUnsafeBufferPointer { proj in
                keys.withUnsafeBufferPointer { kp in
                    walk(range) { i in
                        let rev = SyntheticTable.revision(of: i, atOrBefore: version, kp)
                        renderer.row(
                            i, rev: rev, change: 0, commitVersion: 0, projection: proj, csv: csv,
                            separated: !csv && !first, into: &out)
                        first = false
                    }
                }
            }
        }
    }

    func value(row k: Int, column: Int) -> String? {
        let (i0, d0) = locate(k)
        var i = i0, d = d0
        while d < deleted.count && Int(deleted[d]) == i {
            i += 1
            d += 1
        }
        let rev = keys.withUnsafeBufferPointer { SyntheticTable.revision(of: i, atOrBefore: version, $0) }
        return SyntheticRenderer.with(seed: seed, stamps: stamps) {
            $0.text(projection[column], row: i, rev: rev, change: 0, commitVersion: 0)
        }
    }
}

/// A synthetic table's change rows over a version range.
struct SyntheticChanges: RowSource {
    /// The change rows of one version: inserts, then update pre/post pairs, then deletes.
    struct Segment: Sendable {
        var version: Int
        /// First output row of this version.
        var start: Int
        var insertStart: Int
        var insertCount: Int
        /// Range in `updates` / `deletes`.
        var updatesOffset: Int
        var updatesCount: Int
        var deletesOffset: Int
        var deletesCount: Int
    }

    var seed: UInt64
    var keys: [VersionKey]
    var segments: [Segment]
    var updates: [Int32]
    var deletes: [Int32]
    var count: Int
    var projection: [Int]
    var stamps: [UInt8]

    var estimatedBytesPerRow: Int { 24 + projection.count * 16 }

    /// (table row, revision, change-type index, commit version) of output row `k`.
    @inline(__always)
    static func locate(
        _ k: Int, hint: inout Int, _ segs: UnsafeBufferPointer<Segment>, _ ups: UnsafeBufferPointer<Int32>,
        _ dels: UnsafeBufferPointer<Int32>, _ keys: UnsafeBufferPointer<VersionKey>
    ) -> (Int, Int, Int, Int) {
        while hint + 1 < segs.count && segs[hint + 1].start <= k { hint += 1 }
        let s = segs[hint]
        let v = s.version
        var l = k - s.start
        if l < s.insertCount { return (s.insertStart + l, v, 0, v) }
        l -= s.insertCount
        if l < 2 * s.updatesCount {
            let row = Int(ups[s.updatesOffset + l / 2])
            if l & 1 == 0 { return (row, SyntheticTable.revision(of: row, atOrBefore: v - 1, keys), 1, v) }
            return (row, v, 2, v)
        }
        l -= 2 * s.updatesCount
        let row = Int(dels[s.deletesOffset + l])
        return (row, SyntheticTable.revision(of: row, atOrBefore: v - 1, keys), 3, v)
    }

    func firstHint(_ k: Int) -> Int {
        var lo = 0, hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].start <= k { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    func renderJSON(_ range: Range<Int>, into out: inout ByteBuffer) { render(range, csv: false, &out) }
    func renderCSV(_ range: Range<Int>, into out: inout ByteBuffer) { render(range, csv: true, &out) }

    private func withPointers<T>(
        _ body: (UnsafeBufferPointer<Segment>, UnsafeBufferPointer<Int32>, UnsafeBufferPointer<Int32>, UnsafeBufferPointer<VersionKey>) -> T
    ) -> T {
        segments.withUnsafeBufferPointer { sp in
            updates.withUnsafeBufferPointer { up in
                deletes.withUnsafeBufferPointer { dp in
                    keys.withUnsafeBufferPointer { kp in body(sp, up, dp, kp) }
                }
            }
        }
    }

    private func render(_ range: Range<Int>, csv: Bool, _ out: inout ByteBuffer) {
        guard !range.isEmpty else { return }
        out.reserveCapacity(minimumWritableBytes: range.count * estimatedBytesPerRow)
        var hint = firstHint(range.lowerBound)
        var first = true
        SyntheticRenderer.with(seed: seed, stamps: stamps) { renderer in
            projection.withUnsafeBufferPointer { proj in
                withPointers { sp, up, dp, kp in
                    for k in range {
                        let (row, rev, change, v) = Self.locate(k, hint: &hint, sp, up, dp, kp)
                        renderer.row(
                            row, rev: rev, change: change, commitVersion: v, projection: proj, csv: csv,
                            separated: !csv && !first, into: &out)
                        first = false
                    }
                }
            }
        }
    }

    func value(row k: Int, column: Int) -> String? {
        var hint = firstHint(k)
        let (row, rev, change, v) = withPointers { Self.locate(k, hint: &hint, $0, $1, $2, $3) }
        return SyntheticRenderer.with(seed: seed, stamps: stamps) {
            $0.text(projection[column], row: row, rev: rev, change: change, commitVersion: v)
        }
    }
}
