import Foundation
import Testing

@testable import CDFSyncStorage

/// Wall time and the calling thread's CPU time (the machine is shared, so CPU time is the steadier number).
struct ThreadCPUClock {
    static func cpuNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    func measure(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        let wall0 = Date()
        let cpu0 = Self.cpuNow()
        try body()
        return (Date().timeIntervalSince(wall0), Self.cpuNow() - cpu0)
    }
}

/// Measures apply throughput; runs only when `CDFSYNC_STORAGE_BENCH` is set (it prints, it does not assert on
/// time). Command (docs/storage.md):
/// `CDFSYNC_STORAGE_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ApplyThroughput`
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH"] != nil))
struct ApplyThroughputTests {
    static let rows = Int(ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH_ROWS"] ?? "") ?? 1_000_000
    static let batch = 50_000
    /// `CDFSYNC_STORAGE_BENCH_KEYS=sequential`: batch b holds keys b*50k ..< (b+1)*50k (ident appends too);
    /// default: every batch's keys are spread over the whole key space (a permutation), the harder case.
    static let sequentialKeys = ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH_KEYS"] == "sequential"

    /// "ext-" and 9 digits, built natively (String(format:) yields bridged strings that are slow to read).
    static func padded(_ n: Int) -> String {
        let digits = String(n)
        return "ext-" + String(repeating: "0", count: max(0, 9 - digits.count)) + digits
    }

    static func makeBatch(_ b: Int, version: Int64, tag: String) -> [PanelStore.Change] {
        (0..<batch).map { i in
            let n = b * batch + i
            // ~180-byte records, like a mapped participant row.
            return PanelStore.Change(
                externalID: padded(sequentialKeys ? n : (n &* 7_919) % rows), commitVersion: version,
                record: Array(
                    #"{"email":"user\#(n)@example.com","phone":"+4915112345\#(n % 1000)","country":"DE","first_name":"Name\#(n)","consent":true,"tag":"\#(tag)"}"#
                        .utf8))
        }
    }

    func run(durable: Bool) throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir, durable: durable)
            let batches = Self.rows / Self.batch
            let inputs = (0..<batches).map { Self.makeBatch($0, version: 1, tag: "a") }
            let clock = ThreadCPUClock()
            var total = PanelStore.ApplyOutcome()
            let insertTime = try clock.measure {
                for (b, changes) in inputs.enumerated() {
                    let o = try store.apply(changes, scope: "conn/src", pipeline: "p", checkpoint: .init(tableVersion: Int64(b)))
                    total.inserted += o.inserted
                }
            }
            #expect(total.inserted == Self.rows)
            if ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH_INSERT_ONLY"] != nil {
                print("insert only: \(insertTime)")
                return
            }
            let replay = try clock.measure {
                for changes in inputs {
                    let o = try store.apply(changes, scope: "conn/src", pipeline: "p", checkpoint: nil)
                    total.unchanged += o.unchanged
                }
            }
            #expect(total.unchanged == Self.rows)
            let updates = (0..<batches).map { Self.makeBatch($0, version: 2, tag: "b") }
            let updateTime = try clock.measure {
                for changes in updates {
                    let o = try store.apply(changes, scope: "conn/src", pipeline: "p", checkpoint: nil)
                    total.updated += o.updated
                }
            }
            #expect(total.updated == Self.rows)
            let out = dir + "-out"
            defer { try? FileManager.default.removeItem(atPath: out) }
            var delivered = 0
            let deliverTime = try clock.measure { delivered = try store.deliver(to: out).recordsDelivered }
            #expect(delivered == 2 * Self.rows)
            var scanned = 0
            let scanTime = try clock.measure { try store.forEachRecord(scope: nil) { _ in scanned += 1 } }
            #expect(scanned == Self.rows)
            func rate(_ d: (wall: Double, cpu: Double), _ n: Int) -> String {
                String(format: "wall %.3f s, thread CPU %.3f s (%.0f k rows/s of CPU)", d.wall, d.cpu, Double(n) / d.cpu / 1000)
            }
            print("""
                apply bench durable=\(durable) rows=\(Self.rows) batch=\(Self.batch) keys=\(Self.sequentialKeys ? "sequential" : "spread")
                  insert (new keys):        \(rate(insertTime, Self.rows))
                  replay (unchanged):       \(rate(replay, Self.rows))
                  update (changed content): \(rate(updateTime, Self.rows))
                  deliver \(delivered) lines:     \(rate(deliverTime, delivered))
                  forEachRecord scan:       \(rate(scanTime, scanned))
                """)
        }
    }

    /// The LMDB floor: the same probe + 4 puts per new row with prepared bytes, no hashing, no JSON, no sort.
    @Test func rawLMDBBaseline() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir, durable: false)
            let dbs = try env.openDatabases(["ident", "panel", "state", "outbox"])
            let clock = ThreadCPUClock()
            let batches = Self.rows / Self.batch
            let value = [UInt8](repeating: 0x61, count: 180)
            let line = [UInt8](repeating: 0x62, count: 300)
            var nextID: UInt64 = 1
            let skipProbe = ProcessInfo.processInfo.environment["BASELINE_NO_PROBE"] != nil
            let skipOutbox = ProcessInfo.processInfo.environment["BASELINE_NO_OUTBOX"] != nil
            var total = (wall: 0.0, cpu: 0.0)
            for b in 0..<batches {
                let keys = Self.makeBatch(b, version: 1, tag: "a").map { Array(("conn/src\u{0}" + $0.externalID).utf8) }.sorted {
                    $0.lexicographicallyPrecedes($1)
                }
                let t = try clock.measure {
                    try env.write { txn in
                        for key in keys {
                            if !skipProbe { _ = try txn.get(dbs[0], key: key) }
                            var be = nextID.bigEndian
                            nextID += 1
                            try withUnsafeBytes(of: &be) { id in
                                try key.withUnsafeBytes { k in try txn.put(dbs[0], key: k, value: id) }
                                try value.withUnsafeBytes { v in try txn.put(dbs[1], key: id, value: v, flags: .append) }
                                try value.withUnsafeBytes { v in
                                    try txn.put(dbs[2], key: id, value: UnsafeRawBufferPointer(rebasing: v[0..<16]), flags: .append)
                                }
                                if !skipOutbox {
                                    try line.withUnsafeBytes { v in try txn.put(dbs[3], key: id, value: v, flags: .append) }
                                }
                            }
                        }
                    }
                }
                total.wall += t.wall
                total.cpu += t.cpu
            }
            print(String(format: "raw LMDB baseline keys=%@: wall %.3f s, thread CPU %.3f s for %d rows",
                Self.sequentialKeys ? "sequential" : "spread", total.wall, total.cpu, Self.rows))
        }
    }

    @Test func nonDurable() throws { try run(durable: false) }
    @Test func durable() throws { try run(durable: true) }
}
