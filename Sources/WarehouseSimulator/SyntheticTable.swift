import Foundation

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
        var u = v
        while u >= 2 {
            let ver = versions[u]
            if ver.insertCount > 0 && row >= ver.insertStart && row < ver.insertStart + ver.insertCount { return u }
            if ver.isCandidate(row) { return u }
            u -= 1
        }
        return 1  // not touched since the initial load
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
            table: self, version: version, rowSpace: inserted, deleted: deleted,
            projection: projection ?? Array(0..<Self.columns.count), stamps: timestampTexts())
    }

    func changesSource(from: Int, to: Int, projection: [Int]? = nil) -> SyntheticChanges {
        var starts: [Int] = []
        var vers: [Int] = []
        var total = 0
        if from <= to {
            for v in from...to {
                let ver = versions[v]
                let n = ver.insertCount + 2 * ver.updates.count + ver.deletes.count
                guard n > 0 else { continue }
                vers.append(v)
                starts.append(total)
                total += n
            }
        }
        return SyntheticChanges(
            table: self, versionList: vers, starts: starts, count: total,
            projection: projection ?? Array(0..<(Self.columns.count + 3)), stamps: timestampTexts())
    }

    func timestampTexts() -> [[UInt8]] {
        versions.map { v in
            var b: [UInt8] = []
            Timestamp.append(millis: v.timestampMillis, to: &b)
            return b
        }
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

/// Writes generated cells; shared by the snapshot and change sources.
enum SyntheticRenderer {
    /// Appends the text of table column `col` of `row` at revision `rev`, without quotes.
    @inline(__always)
    static func cell(_ col: Int, row: Int, rev: Int, seed: UInt64, stamps: [[UInt8]], out: ByteBuffer) {
        let h = mix(seed, UInt64(row))
        switch col {
        case 0:
            out.append(UInt8(ascii: "P"))
            out.append(padded: row, width: 9)
        case 1: out.append(Vocabulary.firstNames[Int(h % UInt64(Vocabulary.firstNames.count))])
        case 2: out.append(Vocabulary.lastNames[Int((h >> 12) % UInt64(Vocabulary.lastNames.count))])
        case 3:
            let r = mix(seed, UInt64(row), UInt64(rev) &+ 7)
            out.append(Vocabulary.firstNamesASCII[Int(h % UInt64(Vocabulary.firstNames.count))])
            out.append(UInt8(ascii: "."))
            out.append(Vocabulary.lastNamesASCII[Int((h >> 12) % UInt64(Vocabulary.lastNames.count))])
            out.append(UInt8(ascii: "."))
            out.append(int: row)
            out.append(UInt8(ascii: "@"))
            // Most revisions keep the address; about one in four moves it to another domain.
            let d = (r & 3) == 0 ? (r >> 8) : (h >> 40)
            out.append(Vocabulary.domains[Int(d % UInt64(Vocabulary.domains.count))])
        case 4:
            let place = Vocabulary.places[Int((h >> 24) % UInt64(Vocabulary.places.count))]
            let r = mix(seed, UInt64(row), UInt64(rev) &+ 11)
            out.append(UInt8(ascii: "+"))
            out.append(place.2)
            let n = (r & 7) == 0 ? (r >> 16) : (h >> 20)
            out.append(padded: Int(n % 1_000_000_000), width: 9)
        case 5: out.append(Vocabulary.companies[Int((h >> 32) % UInt64(Vocabulary.companies.count))])
        case 6: out.append(Vocabulary.places[Int((h >> 24) % UInt64(Vocabulary.places.count))].0)
        case 7: out.append(Vocabulary.places[Int((h >> 24) % UInt64(Vocabulary.places.count))].1)
        case 8:
            let r = mix(seed, UInt64(row), UInt64(rev) &+ 13)
            out.append(Vocabulary.jobTitles[Int(r % UInt64(Vocabulary.jobTitles.count))])
        case 9:
            let r = mix(seed, UInt64(row), UInt64(rev) &+ 17)
            out.append(Vocabulary.segments[Int(r % UInt64(Vocabulary.segments.count))])
        case 10:
            let r = mix(seed, UInt64(row), UInt64(rev) &+ 19)
            out.append(r % 10 < 8 ? Vocabulary.optedIn : Vocabulary.optedOut)
        default:
            out.append(stamps[rev])
        }
    }

    /// Appends one row: the projected table columns plus, for change rows, the CDF columns.
    @inline(__always)
    static func row(
        _ row: Int, rev: Int, change: Int, commitVersion: Int, projection: [Int], seed: UInt64, stamps: [[UInt8]],
        csv: Bool, out: ByteBuffer
    ) {
        if !csv { out.append(UInt8(ascii: "[")) }
        var first = true
        for col in projection {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            if !csv { out.append(UInt8(ascii: "\"")) }
            switch col {
            case 12: out.append(Vocabulary.changeTypes[change])
            case 13: out.append(int: commitVersion)
            case 14: out.append(stamps[commitVersion])
            default: cell(col, row: row, rev: rev, seed: seed, stamps: stamps, out: out)
            }
            if !csv { out.append(UInt8(ascii: "\"")) }
        }
        if csv { out.append("\r\n") } else { out.append(UInt8(ascii: "]")) }
    }

    static func text(_ col: Int, row: Int, rev: Int, change: Int, commitVersion: Int, seed: UInt64, stamps: [[UInt8]]) -> String {
        let b = ByteBuffer(capacity: 64)
        switch col {
        case 12: b.append(Vocabulary.changeTypes[change])
        case 13: b.append(int: commitVersion)
        case 14: b.append(stamps[commitVersion])
        default: cell(col, row: row, rev: rev, seed: seed, stamps: stamps, out: b)
        }
        return String(decoding: b.bytes, as: UTF8.self)
    }
}

/// A synthetic table's rows at one version.
struct SyntheticSnapshot: RowSource {
    var table: SyntheticTable
    var version: Int
    /// Rows `0 ..< rowSpace` have been inserted by `version`.
    var rowSpace: Int
    /// Rows deleted by `version`, ascending.
    var deleted: [Int32]
    var projection: [Int]
    var stamps: [[UInt8]]

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

    func renderJSON(_ range: Range<Int>, into out: ByteBuffer) { render(range, csv: false, out) }
    func renderCSV(_ range: Range<Int>, into out: ByteBuffer) { render(range, csv: true, out) }

    private func render(_ range: Range<Int>, csv: Bool, _ out: ByteBuffer) {
        out.reserve(range.count * estimatedBytesPerRow)
        var first = true
        walk(range) { i in
            if !csv && !first { out.append(UInt8(ascii: ",")) }
            first = false
            let rev = table.revision(of: i, atOrBefore: version)
            SyntheticRenderer.row(
                i, rev: rev, change: 0, commitVersion: 0, projection: projection, seed: table.seed, stamps: stamps,
                csv: csv, out: out)
        }
    }

    func value(row k: Int, column: Int) -> String? {
        let (i0, d0) = locate(k)
        var i = i0, d = d0
        while d < deleted.count && Int(deleted[d]) == i {
            i += 1
            d += 1
        }
        let rev = table.revision(of: i, atOrBefore: version)
        return SyntheticRenderer.text(
            projection[column], row: i, rev: rev, change: 0, commitVersion: 0, seed: table.seed, stamps: stamps)
    }
}

/// A synthetic table's change rows over a version range.
struct SyntheticChanges: RowSource {
    var table: SyntheticTable
    /// Versions in the range that have change rows, and where each one's rows start.
    var versionList: [Int]
    var starts: [Int]
    var count: Int
    var projection: [Int]
    var stamps: [[UInt8]]

    var estimatedBytesPerRow: Int { 24 + projection.count * 16 }

    /// (table row, revision, change-type index, commit version) of output row `k`.
    @inline(__always)
    func locate(_ k: Int, hint: inout Int) -> (Int, Int, Int, Int) {
        while hint + 1 < starts.count && starts[hint + 1] <= k { hint += 1 }
        let v = versionList[hint]
        let ver = table.versions[v]
        var l = k - starts[hint]
        if l < ver.insertCount { return (ver.insertStart + l, v, 0, v) }
        l -= ver.insertCount
        if l < 2 * ver.updates.count {
            let row = Int(ver.updates[l / 2])
            if l % 2 == 0 { return (row, table.revision(of: row, atOrBefore: v - 1), 1, v) }
            return (row, v, 2, v)
        }
        l -= 2 * ver.updates.count
        let row = Int(ver.deletes[l])
        return (row, table.revision(of: row, atOrBefore: v - 1), 3, v)
    }

    func firstHint(_ k: Int) -> Int {
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= k { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    func renderJSON(_ range: Range<Int>, into out: ByteBuffer) { render(range, csv: false, out) }
    func renderCSV(_ range: Range<Int>, into out: ByteBuffer) { render(range, csv: true, out) }

    private func render(_ range: Range<Int>, csv: Bool, _ out: ByteBuffer) {
        guard !range.isEmpty else { return }
        out.reserve(range.count * estimatedBytesPerRow)
        var hint = firstHint(range.lowerBound)
        var first = true
        for k in range {
            if !csv && !first { out.append(UInt8(ascii: ",")) }
            first = false
            let (row, rev, change, v) = locate(k, hint: &hint)
            SyntheticRenderer.row(
                row, rev: rev, change: change, commitVersion: v, projection: projection, seed: table.seed,
                stamps: stamps, csv: csv, out: out)
        }
    }

    func value(row k: Int, column: Int) -> String? {
        var hint = firstHint(k)
        let (row, rev, change, v) = locate(k, hint: &hint)
        return SyntheticRenderer.text(
            projection[column], row: row, rev: rev, change: change, commitVersion: v, seed: table.seed, stamps: stamps)
    }
}
