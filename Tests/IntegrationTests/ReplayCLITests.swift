import Foundation
import Testing
import WarehouseSimulator

/// `cdfsync replay` of a table synced with flags (no pipeline file), through the real process: an applied range
/// replayed changes nothing, says so, and leaves a run record with the counts and the peak RSS.
@Suite("Replay CLI")
struct ReplayCLITests {
    static let table = "main.research.replay_panel"

    func cdfsync(_ port: Int, _ dir: TempDir, _ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CrashSafetyTests.binary)
        p.arguments = args + ["--host", "http://127.0.0.1:\(port)", "--warehouse-id", "8a1c2f3d4e5b6a70",
                              "--state-dir", dir.sub("state"), "--output-dir", dir.sub("out")]
        p.environment = ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func replayingTheAppliedRangeByFlagsChangesNothing() throws {
        let sim = try RunningSimulator()
        try sim.sim.addSyntheticTable(name: Self.table, rows: 2_000, seed: 3)
        let dir = TempDir("replay-cli")
        let sync = try cdfsync(sim.port, dir, ["sync", "--table", Self.table, "--key", "participant_id"])
        try #require(sync.status == 0, "\(sync.output)")
        #expect(sync.output.contains("inserted       2000"))
        #expect(sync.output.contains("peak memory"))

        let dry = try cdfsync(sim.port, dir, ["replay", "--table", Self.table, "--key", "participant_id",
                                              "--from-version", "1", "--to-version", "1", "--dry-run"])
        #expect(dry.status == 0, "\(dry.output)")
        #expect(dry.output.contains("would create   0"))
        #expect(dry.output.contains("would skip     2000 unchanged"))

        let summary = dir.sub("replay.json")
        let replay = try cdfsync(sim.port, dir, ["replay", "--table", Self.table, "--key", "participant_id",
                                                 "--from-version", "1", "--to-version", "1", "--summary-json", summary])
        #expect(replay.status == 0, "\(replay.output)")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summary))) as! [String: Any]
        let counts = record["counts"] as! [String: Any]
        #expect(counts["read"] as? Int == 2_000)
        #expect(counts["unchanged"] as? Int == 2_000)
        #expect(counts["inserted"] as? Int == 0 && counts["updated"] as? Int == 0)
        #expect((record["peak_rss_bytes"] as? Int ?? 0) > 0)

        let both = try cdfsync(sim.port, dir, ["replay", "x.yaml", "--table", Self.table, "--from-version", "1"])
        #expect(both.status != 0 && both.output.contains("either a pipeline file or --table"))
    }
}
