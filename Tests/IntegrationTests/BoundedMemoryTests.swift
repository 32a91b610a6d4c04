import CDFSyncCore
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Design §2.4: memory does not grow with the size of a table or a result. The real `cdfsync` process syncs two
/// synthetic tables that differ only in size (8×) through the simulator over loopback — a full sync (one result
/// as large as the table) and an incremental sync of the same 4,000 updated rows over the resulting store — and reports its own peak resident set
/// (`VmHWM`, in the run record as `peak_rss_bytes`). Chunks, batches and in-flight downloads are scaled down so
/// that the small table already fills every buffer; past that point a streaming engine's peak is flat, while
/// anything that kept rows, keys or the store's pages in memory would add tens of megabytes on the large table.
@Suite("Bounded memory", .serialized)
struct BoundedMemoryTests {
    static let smallRows = 50_000
    static let largeRows = 400_000
    static let changedRows = 4_000

    struct Peaks {
        var full: Int
        var incremental: Int
        var fullRows: Int
        var incrementalRows: Int
    }

    /// Runs `cdfsync sync` as its own process; returns its run record.
    func sync(port: Int, table: String, dir: TempDir) throws -> [String: Any] {
        let summary = dir.sub("summary.json")
        let run = try runCLI(["sync", "--table", table, "--key", "participant_id", "--batch-size", "1000",
                              "--in-flight", "2", "--disposition", "external-links", "--summary-json", summary],
                             port: port, dir: dir)
        try #require(run.status == 0, "sync of \(table) failed: \(run.output)")
        return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summary))) as! [String: Any]
    }

    func peaks(sim: RunningSimulator, table: String, rows: Int) throws -> Peaks {
        try sim.sim.addSyntheticTable(name: table, rows: rows, seed: 11)
        let dir = TempDir("bounded-memory")
        let full = try sync(port: sim.port, table: table, dir: dir)
        // The same number of changed rows over either store: only the store's size differs.
        try sim.sim.appendSyntheticCommit(table: table, updateFraction: Double(Self.changedRows) / Double(rows))
        let incremental = try sync(port: sim.port, table: table, dir: dir)
        func read(_ r: [String: Any]) -> Int { (r["counts"] as! [String: Any])["read"] as! Int }
        return Peaks(full: full["peak_rss_bytes"] as! Int, incremental: incremental["peak_rss_bytes"] as! Int,
                     fullRows: read(full), incrementalRows: read(incremental))
    }

    @Test func peakMemoryDoesNotGrowWithTableOrResultSize() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 2_000, rowsPerExternalChunk: 10_000))
        let small = try peaks(sim: sim, table: "main.research.memory_small", rows: Self.smallRows)
        let large = try peaks(sim: sim, table: "main.research.memory_large", rows: Self.largeRows)
        #expect(small.fullRows == Self.smallRows && large.fullRows == Self.largeRows)
        #expect(small.incrementalRows == 2 * Self.changedRows && large.incrementalRows == 2 * Self.changedRows,
                "an update is a pre- and a post-image per row")

        let mb = { (b: Int) in b / 1_048_576 }
        let line = "peak RSS MB — full: \(mb(small.full)) at \(Self.smallRows) rows, \(mb(large.full)) at \(Self.largeRows); "
            + "incremental: \(mb(small.incremental)) over \(Self.smallRows), \(mb(large.incremental)) over \(Self.largeRows)"
        print(line)
        #expect(small.full > 0 && large.full > 0, "the run record carries the peak RSS (needs /proc)")
        // 8× the rows (≈ 90 MB more JSON in one result, ≈ 8× the LMDB store) may cost at most this much more:
        // allocator and page-cache noise, not a per-row or per-key cost.
        let margin = 24 * 1_048_576
        #expect(large.full <= small.full + margin, "full sync: \(line)")
        #expect(large.incremental <= small.incremental + margin, "incremental sync: \(line)")
    }
}
