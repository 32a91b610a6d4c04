import CDFSyncTestSupport
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
        #expect(dry.output.contains("unchanged      2000"), "\(dry.output)")

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

/// `cdfsync sync --durability run` (commits not synced, the store synced once before delivery) reaches the same
/// panel, checkpoint and delivered changes as the default, and says which it used in the run record.
@Suite("Durability CLI")
struct DurabilityCLITests {
    /// Syncs a fresh 3,000-row table once per value of `option`, each into a fresh state directory (batches of 500),
    /// lets `check` look at each run, and returns each run's delivered files; then checks that `bad` is refused
    /// with a message naming the option and containing `expected`.
    static func syncOncePerValue(
        of option: String, _ values: [String], seed: UInt64, extra: (TempDir) -> [String] = { _ in [] }, bad: String,
        expected: String,
        check: (_ value: String, _ dir: TempDir, _ sim: RunningSimulator) throws -> Void = { _, _, _ in }
    ) throws -> [[String]] {
        let sim = try RunningSimulator()
        try sim.sim.addSyntheticTable(name: ReplayCLITests.table, rows: 3_000, seed: seed)
        let sync = ["sync", "--table", ReplayCLITests.table, "--key", "participant_id"]
        var outputs: [[String]] = []
        for value in values {
            let dir = TempDir("\(option.dropFirst(2))-\(value)")
            let run = try runCLI(sync + ["--batch-size", "500", option, value] + extra(dir), port: sim.port,
                                 dir: dir)
            try #require(run.status == 0, "\(run.output)")
            #expect(run.output.contains("inserted       3000"), "\(run.output)")
            try check(value, dir, sim)
            outputs.append(try FileManager.default.contentsOfDirectory(atPath: dir.sub("out")).sorted())
        }
        let refused = try runCLI(sync + [option, bad], port: sim.port, dir: TempDir("\(option.dropFirst(2))-bad"))
        #expect(refused.status != 0 && refused.output.contains(option) && refused.output.contains(expected),
                "\(refused.output)")
        return outputs
    }

    @Test func aRunSyncedOnceReachesTheSameStateAsOneSyncedEveryCommit() throws {
        let outputs = try Self.syncOncePerValue(
            of: "--durability", ["commit", "run"], seed: 5, extra: { ["--summary-json", $0.sub("run.json")] },
            bad: "sometimes", expected: "commit"
        ) { durability, dir, sim in
            let data = try Data(contentsOf: URL(fileURLWithPath: dir.sub("run.json")))
            let record = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            #expect(record["durability"] as? String == durability)
            #expect(record["checkpoint_version"] as? Int == record["to_version"] as? Int)
            // `runs show` prints every field with its key whole (keys padded to the longest, not cut).
            let show = try runCLI(["runs", "show", "1", "--state-dir", dir.sub("state")], env: [:])
            #expect(show.status == 0, "\(show.stderr)")
            #expect(show.stdout.contains("durability          \(durability)\n"), "\(show.stdout)")
            #expect(show.stdout.contains("checkpoint_version  "), "\(show.stdout)")
            #expect(show.stdout.contains("  event_updates_ignored  0\n"), "\(show.stdout)")
            let again = try runCLI(["sync", "--table", ReplayCLITests.table, "--key", "participant_id"],
                                   port: sim.port, dir: dir)
            #expect(again.status == 0 && again.output.contains("no new commits"), "\(again.output)")
        }
        #expect(outputs[0] == outputs[1], "the two durabilities delivered different change files")
    }

    /// `--reading-niceness` only changes scheduling: reading on the calling thread (0) and on a lowered thread (the
    /// default) reach the same panel and deliver the same files; a value outside 0-19 is refused, naming the option.
    @Test func readingAtTheSyncsOwnPriorityReachesTheSameState() throws {
        let outputs = try Self.syncOncePerValue(
            of: "--reading-niceness", ["0", "10"], seed: 6, bad: "25", expected: "0")
        #expect(outputs[0] == outputs[1])
    }
}
