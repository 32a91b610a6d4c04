// storage-throughput: the storage layer alone at the scale of a real sync (1 M rows by default), printing wall and
// the applying thread's CPU time per phase. It measures; it asserts only the counts that say the work was done.
// Run from the repository root (release build; see docs/benchmarks.md, "Storage throughput"):
//
//     swift run -c release --package-path Benchmarks storage-throughput full-sync [--rows N] [--contact]
//         [--unprepared] [--durability both|durable|nosync]
//     swift run -c release --package-path Benchmarks storage-throughput apply [--rows N] [--keys spread|sequential]
//         [--insert-only] [--durability both|durable|nosync]
//     swift run -c release --package-path Benchmarks storage-throughput raw-lmdb [--rows N]
//         [--keys spread|sequential] [--no-probe] [--no-outbox]
//     swift run -c release --package-path Benchmarks storage-throughput activation [--rows N]
//         [--durability both|durable|nosync]
//
// The micro-benchmarks next to it (Benchmarks/Benchmarks/ApplyBenchmarks) gate one 50k-row batch on its allocation
// count; this measures what a million rows cost, which no gate can hold steady on a shared machine.

import CDFSyncCore
import CDFSyncStorage
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Options

struct Options {
    enum Scenario: String { case fullSync = "full-sync", apply, rawLMDB = "raw-lmdb", activation }
    var scenario: Scenario
    var rows = 1_000_000
    /// Durable (one fsync per commit, as the engine opens the store) and/or not.
    var durability: [Bool] = [false, true]
    /// `apply`, `raw-lmdb`: batch b holds keys b·50k ..< (b+1)·50k (identity keys append); otherwise each batch's keys
    /// are spread over the whole key space (a permutation), the harder case.
    var sequentialKeys = false
    /// `full-sync`: every row also carries a unique email and phone, in an order unrelated to the external ids.
    var contact = false
    /// `full-sync`: skip `prepare`, so apply hashes (and compresses) itself.
    var unprepared = false
    /// `apply`: stop after the insert phase.
    var insertOnly = false
    /// `raw-lmdb`: leave out the probe of `ident` / the outbox put.
    var noProbe = false
    var noOutbox = false

    static let usage = """
        usage: storage-throughput full-sync|apply|raw-lmdb|activation [--rows N] [--durability both|durable|nosync]
               [--keys spread|sequential] [--contact] [--unprepared] [--insert-only] [--no-probe] [--no-outbox]
        """

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        guard let first = rest.popFirst(), let scenario = Scenario(rawValue: first) else { throw UsageError() }
        self.scenario = scenario
        while let option = rest.popFirst() {
            switch option {
            case "--rows":
                guard let text = rest.popFirst(), let n = Int(text), n >= 100_000 else {
                    throw UsageError(detail: "--rows takes a whole number of at least 100000")
                }
                rows = n
            case "--durability":
                switch rest.popFirst() {
                case "both": durability = [false, true]
                case "durable": durability = [true]
                case "nosync": durability = [false]
                default: throw UsageError(detail: "--durability takes both, durable or nosync")
                }
            case "--keys":
                switch rest.popFirst() {
                case "spread": sequentialKeys = false
                case "sequential": sequentialKeys = true
                default: throw UsageError(detail: "--keys takes spread or sequential")
                }
            case "--contact": contact = true
            case "--unprepared": unprepared = true
            case "--insert-only": insertOnly = true
            case "--no-probe": noProbe = true
            case "--no-outbox": noOutbox = true
            default: throw UsageError(detail: "unknown option \(option)")
            }
        }
    }

    struct UsageError: Error { var detail: String? }
}

// MARK: - Measuring

/// Wall time and the calling thread's CPU time (the machine is shared, so CPU time is the steadier number).
struct Measured {
    var wall = 0.0
    var cpu = 0.0

    static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func of(_ body: () throws -> Void) rethrows -> Measured {
        let wall0 = Date()
        let cpu0 = threadCPU()
        try body()
        return Measured(wall: Date().timeIntervalSince(wall0), cpu: threadCPU() - cpu0)
    }

    static func + (a: Measured, b: Measured) -> Measured { Measured(wall: a.wall + b.wall, cpu: a.cpu + b.cpu) }

    func rate(_ n: Int) -> String {
        String(format: "wall %.3f s (%.0f k rows/s), thread CPU %.3f s (%.0f k rows/s of CPU)",
            wall, Double(n) / wall / 1000, cpu, Double(n) / cpu / 1000)
    }
}

struct CountMismatch: Error, CustomStringConvertible {
    var description: String
}

func expect(_ what: String, _ got: Int, _ wanted: Int) throws {
    guard got == wanted else { throw CountMismatch(description: "\(what): \(got), expected \(wanted)") }
}

/// A fresh directory under the system temporary directory, removed after `body`.
func withScratchDirectory(_ body: (String) throws -> Void) throws {
    let path = NSTemporaryDirectory() + "cdfsync-storage-throughput-\(getpid())-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    try body(path)
}

// MARK: - Workloads

/// "ext-" and 9 digits, built natively (String(format:) yields bridged strings that are slow to read).
func padded(_ n: Int) -> String {
    let digits = String(n)
    return "ext-" + String(repeating: "0", count: max(0, 9 - digits.count)) + digits
}

/// ~180-byte records, like a mapped participant row.
func participantRecord(_ n: Int, tag: String) -> [UInt8] {
    Array(#"{"email":"user\#(n)@example.com","phone":"+4915112345\#(n % 1000)","country":"DE","first_name":"Name\#(n)","consent":true,"tag":"\#(tag)"}"#.utf8)
}

/// Full sync: 1 M new keys in sorted 100k batches, prepared on the calling thread (in the engine, the decoding
/// thread), applied with a checkpoint each, then delivered.
func fullSync(_ o: Options, durable: Bool) throws {
    let batch = 100_000
    func makeBatch(_ b: Int) -> [PanelStore.Change] {
        (0..<batch).map { i in
            let n = b * batch + i
            return PanelStore.Change(
                externalID: padded(n), commitVersion: 1, record: participantRecord(n, tag: "a"),
                // Emails and phones in an order unrelated to the external ids, as in real data.
                email: o.contact ? "u\((n &* 2_654_435_761) % 1_000_000_007)@example.com" : nil,
                phone: o.contact ? "+49\(100_000_000_000 + (n &* 40_503) % 99_999_999_977)" : nil)
        }
    }
    try withScratchDirectory { dir in
        let store = try PanelStore(directory: dir + "/db", durable: durable)
        var inputs = (0..<(o.rows / batch)).map(makeBatch)
        let rows = inputs.count * batch
        let compressor = try ZstdCompressor(level: store.recordCompressionLevel)
        let prepare = try Measured.of {
            if !o.unprepared { for b in inputs.indices { try store.prepare(&inputs[b], compressor: compressor) } }
        }
        var inserted = 0
        let apply = try Measured.of {
            for (b, changes) in inputs.enumerated() {
                inserted += try store.apply(
                    changes, scope: "conn/src", pipeline: "p", checkpoint: .init(tableVersion: Int64(b))
                ).inserted
            }
        }
        try expect("inserted", inserted, rows)
        var delivered = 0
        let deliver = try Measured.of { delivered = try store.deliver(to: dir + "/out").recordsDelivered }
        try expect("delivered", delivered, rows)
        print("""
            full-sync durable=\(durable) rows=\(rows) batch=\(batch) (sorted, new keys) contact=\(o.contact) \
            prepared=\(!o.unprepared)
              prepare (caller's thread): \(prepare.rate(rows))
              apply:   \(apply.rate(rows))
              deliver: \(deliver.rate(delivered))
              total:   \((apply + deliver).rate(rows))
            """)
    }
}

/// Apply phases in 50k batches: insert new keys, replay the same content (unchanged), update every key, deliver
/// the outbox, scan the panel.
func applyPhases(_ o: Options, durable: Bool) throws {
    let batch = 50_000
    let batches = o.rows / batch
    let rows = batches * batch
    func makeBatch(_ b: Int, version: Int64, tag: String) -> [PanelStore.Change] {
        (0..<batch).map { i in
            let n = b * batch + i
            return PanelStore.Change(
                externalID: padded(o.sequentialKeys ? n : (n &* 7_919) % rows), commitVersion: version,
                record: participantRecord(n, tag: tag))
        }
    }
    try withScratchDirectory { dir in
        let store = try PanelStore(directory: dir + "/db", durable: durable)
        let inputs = (0..<batches).map { makeBatch($0, version: 1, tag: "a") }
        var inserted = 0
        let insert = try Measured.of {
            for (b, changes) in inputs.enumerated() {
                inserted += try store.apply(
                    changes, scope: "conn/src", pipeline: "p", checkpoint: .init(tableVersion: Int64(b))
                ).inserted
            }
        }
        try expect("inserted", inserted, rows)
        let keys = o.sequentialKeys ? "sequential" : "spread"
        let head = "apply durable=\(durable) rows=\(rows) batch=\(batch) keys=\(keys)"
        if o.insertOnly {
            print("\(head)\n  insert (new keys): \(insert.rate(rows))")
            return
        }
        var unchanged = 0
        let replay = try Measured.of {
            for changes in inputs {
                unchanged += try store.apply(changes, scope: "conn/src", pipeline: "p", checkpoint: nil).unchanged
            }
        }
        try expect("unchanged", unchanged, rows)
        let updates = (0..<batches).map { makeBatch($0, version: 2, tag: "b") }
        var updated = 0
        let update = try Measured.of {
            for changes in updates {
                updated += try store.apply(changes, scope: "conn/src", pipeline: "p", checkpoint: nil).updated
            }
        }
        try expect("updated", updated, rows)
        var delivered = 0
        let deliver = try Measured.of { delivered = try store.deliver(to: dir + "/out").recordsDelivered }
        try expect("delivered", delivered, 2 * rows)
        var scanned = 0
        let scan = try Measured.of { try store.forEachRecord(scope: nil) { _ in scanned += 1 } }
        try expect("scanned", scanned, rows)
        print("""
            \(head)
              insert (new keys):        \(insert.rate(rows))
              replay (unchanged):       \(replay.rate(rows))
              update (changed content): \(update.rate(rows))
              deliver \(delivered) lines: \(deliver.rate(delivered))
              forEachRecord scan:       \(scan.rate(scanned))
            """)
    }
}

/// The LMDB floor: per new row the LMDB work of an insert with prepared bytes (probe `ident`, put `ident`, append
/// `panel` 180 B, append `state` 16 B, append `outbox` 300 B) and no Swift logic: no hashing, no JSON, no sort.
func rawLMDB(_ o: Options) throws {
    let batch = 50_000
    let batches = o.rows / batch
    try withScratchDirectory { dir in
        let env = try LMDBEnvironment(directory: dir, durable: false)
        let dbs = try env.openDatabases(["ident", "panel", "state", "outbox"])
        let value = [UInt8](repeating: 0x61, count: 180)
        let line = [UInt8](repeating: 0x62, count: 300)
        var nextID: UInt64 = 1
        var total = Measured()
        for b in 0..<batches {
            let keys = (0..<batch).map { i -> [UInt8] in
                let n = b * batch + i
                return Array(("conn/src\u{0}" + padded(o.sequentialKeys ? n : (n &* 7_919) % (batches * batch))).utf8)
            }.sorted { $0.lexicographicallyPrecedes($1) }
            total = total + (try Measured.of {
                try env.write { txn in
                    for key in keys {
                        if !o.noProbe { _ = try txn.get(dbs[0], key: key) }
                        var be = nextID.bigEndian
                        nextID += 1
                        try withUnsafeBytes(of: &be) { id in
                            try key.withUnsafeBytes { k in try txn.put(dbs[0], key: k, value: id) }
                            try value.withUnsafeBytes { v in try txn.put(dbs[1], key: id, value: v, flags: .append) }
                            try value.withUnsafeBytes { v in
                                try txn.put(dbs[2], key: id, value: UnsafeRawBufferPointer(rebasing: v[0..<16]),
                                    flags: .append)
                            }
                            if !o.noOutbox {
                                try line.withUnsafeBytes { v in try txn.put(dbs[3], key: id, value: v, flags: .append) }
                            }
                        }
                    }
                }
            })
        }
        print("raw-lmdb keys=\(o.sequentialKeys ? "sequential" : "spread") rows=\(batches * batch) "
            + "probe=\(!o.noProbe) outbox=\(!o.noOutbox): \(total.rate(batches * batch))")
    }
}

/// An activation's cost: the same full sync (new keys with an email, opted in, 100k batches) into two stores, one
/// without and one with an activation that invites to a pool (no confirmation), 4 in 5 rows eligible by country;
/// then the change delivery of both and the invitation delivery. The ratios against the store without an
/// activation, measured in the same run, are the figures to compare across machines.
func activation(_ o: Options, durable: Bool) throws {
    let batch = 100_000
    let batches = o.rows / batch
    let rows = batches * batch
    let countries = ["GB", "IE", "DE", "FR", "ES"]
    func makeBatch(_ b: Int) -> [PanelStore.Change] {
        (0..<batch).map { i in
            let n = b * batch + i
            let json = #"{"external_id":"\#(padded(n))","email":"user\#(n)@example.com","first_name":"Name\#(n)","#
                + #""country":"\#(countries[n % 5])","contactable":true}"#
            return PanelStore.Change(externalID: padded(n), commitVersion: 1, record: Array(json.utf8),
                email: "user\(n)@example.com", optedIn: true)
        }
    }
    guard let rule = ActivationRule(Pipeline.Activation(pool: "benchmark",
        eligibility: [.init(field: "country", op: .in, value: .list(["GB", "IE", "DE", "FR"]))]))
    else { throw CountMismatch(description: "the benchmark's activation does not make a rule") }
    let settings = PanelStore.ActivationSettings(rule: rule, settingsHash: "benchmark")
    let eligible = (0..<rows).count { $0 % 5 != 4 }
    try withScratchDirectory { dir in
        var inputs = (0..<batches).map(makeBatch)
        let plain = try PanelStore(directory: dir + "/plain", durable: durable)
        let invited = try PanelStore(directory: dir + "/invited", durable: durable)
        let compressor = try ZstdCompressor(level: plain.recordCompressionLevel)
        for b in inputs.indices { try plain.prepare(&inputs[b], compressor: compressor) }
        var applied = (plain: Measured(), invited: Measured())
        var queued = 0
        // Alternate the two stores batch by batch, so that both see the same machine.
        for (b, changes) in inputs.enumerated() {
            applied.plain = applied.plain + (try Measured.of {
                _ = try plain.apply(changes, scope: "conn/src", pipeline: "p", checkpoint: .init(tableVersion: Int64(b)))
            })
            applied.invited = applied.invited + (try Measured.of {
                queued += try invited.apply(changes, scope: "conn/src", pipeline: "p",
                    checkpoint: .init(tableVersion: Int64(b)), activation: settings).activation.queued
            })
        }
        try expect("queued invitations", queued, eligible)
        var delivered = (plain: 0, invited: 0)
        let deliverPlain = try Measured.of { delivered.plain = try plain.deliver(to: dir + "/out-plain").recordsDelivered }
        let deliverInvited = try Measured.of {
            delivered.invited = try invited.deliver(to: dir + "/out-invited").recordsDelivered
        }
        try expect("changes delivered", delivered.plain, rows)
        try expect("changes delivered with an activation", delivered.invited, rows)
        var sent = 0
        let invitations = try Measured.of {
            sent = try invited.deliverInvitations(pipeline: "p", settings: settings, directory: dir + "/invitations",
                idempotencyKey: { pipeline, pid, target in "\(pipeline)/\(pid)/\(target)" }).sent
        }
        try expect("invitations sent", sent, eligible)
        let ratio = { (a: Measured, b: Measured) in String(format: "×%.2f CPU", a.cpu / b.cpu) }
        let each = { (m: Measured, n: Int) in String(format: "%.2f µs CPU each", m.cpu / Double(n) * 1e6) }
        let without = applied.plain + deliverPlain
        let with = applied.invited + deliverInvited + invitations
        print("""
            activation durable=\(durable) rows=\(rows) batch=\(batch) invited=\(eligible) (pool, country in 4 of 5)
              apply, no activation:        \(applied.plain.rate(rows))
              apply, activation:           \(applied.invited.rate(rows)) — \(ratio(applied.invited, applied.plain)), \
            \(String(format: "%.2f", (applied.invited.cpu - applied.plain.cpu) / Double(rows) * 1e6)) µs more a row
              deliver changes, none:       \(deliverPlain.rate(rows))
              deliver changes, activation: \(deliverInvited.rate(rows))
              deliver invitations:         \(invitations.rate(sent)) — \(each(invitations, sent))
              the sync with its activation (apply, deliver, invite) against the same without: \
            \(String(format: "×%.2f wall, ×%.2f CPU of the calling thread", with.wall / without.wall, with.cpu / without.cpu))
            """)
    }
}

// MARK: - Main

do {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    switch options.scenario {
    case .fullSync: for durable in options.durability { try fullSync(options, durable: durable) }
    case .apply: for durable in options.durability { try applyPhases(options, durable: durable) }
    case .rawLMDB: try rawLMDB(options)
    case .activation: for durable in options.durability { try activation(options, durable: durable) }
    }
} catch let e as Options.UsageError {
    FileHandle.standardError.write(Data(((e.detail.map { "storage-throughput: \($0)\n" } ?? "") + Options.usage + "\n").utf8))
    exit(64)
} catch {
    FileHandle.standardError.write(Data("storage-throughput: \(error)\n".utf8))
    exit(1)
}
