import Foundation
import Testing

@testable import CDFSyncStorage

/// The issue's speed target: 1 M new rows in sorted 100 k batches (a full sync), applied then delivered.
/// Runs only when `CDFSYNC_STORAGE_BENCH` is set; prints, never asserts on time. Command (docs/storage.md §7):
/// `CDFSYNC_STORAGE_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter FullSyncBench`
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH"] != nil))
struct FullSyncBenchTests {
    static let rows = Int(ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH_ROWS"] ?? "") ?? 1_000_000
    static let batch = 100_000
    /// `CDFSYNC_STORAGE_BENCH_CONTACT=1`: every row also carries a (unique) email and phone, so identity
    /// resolution and the email/phone indexes are exercised.
    static let withContact = ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH_CONTACT"] != nil
    /// `CDFSYNC_STORAGE_BENCH_UNPREPARED=1`: do not call `prepare` (apply hashes/compresses itself).
    static let unprepared = ProcessInfo.processInfo.environment["CDFSYNC_STORAGE_BENCH_UNPREPARED"] != nil

    static func makeBatch(_ b: Int) -> [PanelStore.Change] {
        (0..<batch).map { i in
            let n = b * batch + i
            return PanelStore.Change(
                externalID: ApplyThroughputTests.padded(n), commitVersion: 1,
                record: Array(
                    #"{"email":"user\#(n)@example.com","phone":"+4915112345\#(n % 1000)","country":"DE","first_name":"Name\#(n)","consent":true,"tag":"a"}"#
                        .utf8),
                // Emails and phones in an order unrelated to the external ids, as in real data.
                email: withContact ? "u\((n &* 2_654_435_761) % 1_000_000_007)@example.com" : nil,
                phone: withContact ? "+49\(100_000_000_000 + (n &* 40_503) % 99_999_999_977)" : nil)
        }
    }

    func run(durable: Bool) throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db", durable: durable)
            var inputs = (0..<(Self.rows / Self.batch)).map { Self.makeBatch($0) }
            let clock = ThreadCPUClock()
            // In the engine this runs on the decoding thread, beside the writer thread.
            let compressor = try ZstdCompressor(level: store.recordCompressionLevel)
            let prepareTime = try clock.measure {
                if !Self.unprepared { for b in inputs.indices { try store.prepare(&inputs[b], compressor: compressor) } }
            }
            var inserted = 0
            let applyTime = try clock.measure {
                for (b, changes) in inputs.enumerated() {
                    inserted += try store.apply(
                        changes, scope: "conn/src", pipeline: "p", checkpoint: .init(tableVersion: Int64(b))
                    ).inserted
                }
            }
            #expect(inserted == Self.rows)
            var delivered = 0
            let deliverTime = try clock.measure { delivered = try store.deliver(to: dir + "/out").recordsDelivered }
            #expect(delivered == Self.rows)
            func rate(_ d: (wall: Double, cpu: Double), _ n: Int) -> String {
                String(format: "wall %.3f s (%.0f k rows/s), thread CPU %.3f s", d.wall, Double(n) / d.wall / 1000, d.cpu)
            }
            print("""
                full-sync bench durable=\(durable) rows=\(Self.rows) batch=\(Self.batch) (sorted, new keys) contact=\(Self.withContact)
                  prepare (caller's thread): \(rate(prepareTime, Self.rows))
                  apply:   \(rate(applyTime, Self.rows))
                  deliver: \(rate(deliverTime, delivered))
                  total:   \(rate((applyTime.wall + deliverTime.wall, applyTime.cpu + deliverTime.cpu), Self.rows))
                """)
        }
    }

    @Test func fullSyncNonDurable() throws { try run(durable: false) }
    @Test func fullSyncDurable() throws { try run(durable: true) }
}
