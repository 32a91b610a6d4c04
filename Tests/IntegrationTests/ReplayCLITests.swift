import Foundation
import Testing
import WarehouseSimulator

/// `cdfsync replay` of a table synced with flags (no pipeline file), through the real process: an applied range
/// replayed changes nothing, says so, and leaves a run record with the counts and the peak RSS.
@Suite("Replay CLI")
struct ReplayCLITests {
    static let table = "main.research.replay_panel"

    @Test func replayingTheAppliedRangeByFlagsChangesNothing() throws {
        let sim = try RunningSimulator()
        try sim.sim.addSyntheticTable(name: Self.table, rows: 2_000, seed: 3)
        let dir = TempDir("replay-cli")
        let sync = try runCLI(["sync", "--table", Self.table, "--key", "participant_id"], port: sim.port, dir: dir)
        try #require(sync.status == 0, "\(sync.output)")
        #expect(sync.output.contains("inserted       2000"))
        #expect(sync.output.contains("peak memory"))

        let dry = try runCLI(["replay", "--table", Self.table, "--key", "participant_id",
                                              "--from-version", "1", "--to-version", "1", "--dry-run"], port: sim.port, dir: dir)
        #expect(dry.status == 0, "\(dry.output)")
        #expect(dry.output.contains("would create   0"))
        #expect(dry.output.contains("would skip     2000 unchanged"))

        let summary = dir.sub("replay.json")
        let replay = try runCLI(["replay", "--table", Self.table, "--key", "participant_id",
                                                 "--from-version", "1", "--to-version", "1", "--summary-json", summary], port: sim.port, dir: dir)
        #expect(replay.status == 0, "\(replay.output)")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summary))) as! [String: Any]
        let counts = record["counts"] as! [String: Any]
        #expect(counts["read"] as? Int == 2_000)
        #expect(counts["unchanged"] as? Int == 2_000)
        #expect(counts["inserted"] as? Int == 0 && counts["updated"] as? Int == 0)
        #expect((record["peak_rss_bytes"] as? Int ?? 0) > 0)

        let both = try runCLI(["replay", "x.yaml", "--table", Self.table, "--from-version", "1"], port: sim.port, dir: dir)
        #expect(both.status != 0 && both.output.contains("either a pipeline file or --table"))
    }
}
