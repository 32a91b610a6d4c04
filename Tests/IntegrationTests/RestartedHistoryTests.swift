import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// A table dropped and created again under the same name starts a new Delta history at v0. A checkpoint from the
/// old history is then past the latest version; the sync must refuse rather than wait for the new history to pass
/// it (which would skip the new table's first versions without a word).
@Suite("Restarted table history")
struct RestartedHistoryTests {
    static let table = "main.research.participants"

    /// The demo table again, with only its first `versions` commits (a new history from v0).
    func recreated(versions: Int) throws -> Table {
        var t = try #require(try Workspace.load(path: fixturePath("demo-workspace.json")).tables.first { $0.name == Self.table })
        t.commits = Array(t.commits.prefix(versions))
        return t
    }

    /// The message of the failed run `body` starts, which must be the engine's own refusal (a `SyncError`).
    func refusal(_ body: () throws -> Void) -> String {
        var message = ""
        #expect {
            try body()
        } throws: { e in
            message = "\(e)"
            return (e as? SyncFailure)?.underlying is SyncError
        }
        return message
    }

    func outputFiles(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    @Test func aCheckpointPastTheLatestVersionFailsTheRunAndMovesNothing() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let first = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(first.toVersion == 6)
        let panel = try panelContents(dir.sub("state"))
        let files = outputFiles(dir.sub("out"))

        // DROP TABLE, then CREATE TABLE with two commits: the name now has versions v0…v1.
        try sim.sim.dropTable(Self.table)
        try sim.sim.addTable(recreated(versions: 2))
        #expect(sim.sim.latestVersion(table: Self.table) == 1)

        let message = refusal { _ = try runSync(sim, state: dir.sub("state"), output: dir.sub("out")) }
        #expect(message.contains("checkpointed at v6"), "\(message)")
        #expect(message.contains("latest version of \(Self.table) is v1"), "\(message)")
        #expect(message.contains("--state-dir"), "\(message)")

        // Nothing moved: checkpoint, panel, delivered files; the failed run is on record.
        #expect(try panelContents(dir.sub("state")) == panel)
        #expect(outputFiles(dir.sub("out")) == files)
        let store = try PanelStore(directory: dir.sub("state"))
        #expect(try store.checkpoint(pipeline: Self.table)?.tableVersion == 6)
        let last = try #require(try store.runs(limit: 1).first)
        let record = try #require(try JSONSerialization.jsonObject(with: Data(last.json)) as? [String: Any])
        #expect(record["status"] as? String == "failed")

        // The remedy works: a new state directory takes the new table from v0.
        let fresh = try runSync(sim, state: dir.sub("state2"), output: dir.sub("out2"))
        #expect(fresh.toVersion == 1)
        #expect(fresh.inserted > 0)
    }

    @Test func aRecreatedTableThatHasPassedTheCheckpointIsToldApartByItsCreationTime() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        let before = try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: Self.table)
        #expect(before?.tableVersion == 6)
        let created = try #require(before?.sourceCreated, "the checkpoint records when the source was created")
        let panel = try panelContents(dir.sub("state"))
        let files = outputFiles(dir.sub("out"))

        // Another table under the name, created at another time, already at v11: reading v7…v11 of it would skip
        // its first versions (its initial load) without a word.
        try sim.sim.dropTable(Self.table)
        try sim.sim.addSyntheticTable(name: Self.table, rows: 500, seed: 9, updateFraction: 0.02, updateVersions: 10)
        #expect(sim.sim.latestVersion(table: Self.table) == 11)

        let message = refusal { _ = try runSync(sim, state: dir.sub("state"), output: dir.sub("out")) }
        #expect(message.contains("checkpoint (v6) was taken from a table of that name created at \(created)"), "\(message)")
        #expect(message.contains("dropped and created again") && message.contains("--state-dir"), "\(message)")
        #expect(try panelContents(dir.sub("state")) == panel)
        #expect(outputFiles(dir.sub("out")) == files)
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: Self.table) == before)

        // A replay of the new table's versions is refused the same way (they would apply under the old history's
        // per-key versions), dry run or not.
        for dryRun in [true, false] {
            let client = StatementClient(settings: try sim.settings())
            client.retryPolicy.baseDelay = 0.01
            let sync = CDFSync(client: client, store: try PanelStore(directory: dir.sub("state")),
                options: SyncOptions(table: try QualifiedName(parsing: Self.table), keyColumn: "participant_id",
                    outputDirectory: dir.sub("out")))
            #expect {
                _ = try sync.replay(ReplayOptions(fromVersion: 1, toVersion: 11, dryRun: dryRun, redeliver: false))
            } throws: { e in "\(e)".contains("dropped and created again") }
        }
        #expect(try panelContents(dir.sub("state")) == panel)
    }

    @Test func aCheckpointWithoutACreationTimeIsStillAccepted() throws {
        // Stores written before the creation time was recorded: the next run proceeds and records it.
        let sim = try RunningSimulator()
        let dir = TempDir()
        do {
            let store = try PanelStore(directory: dir.sub("state"))
            try store.setCheckpoint(PanelStore.Checkpoint(tableVersion: 3), pipeline: Self.table)
        }
        let s = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(s.checkpointBefore == 3 && s.fromVersion == 4 && s.toVersion == 6)
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: Self.table)?.sourceCreated != nil)
    }

    @Test func aChangeFeedSyncOfAViewSaysWhatToDoInstead() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        #expect {
            _ = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"), table: "main.research.opted_in_participants")
        } throws: { e in
            let t = "\(e)"
            return t.contains("main.research.opted_in_participants is a view: views have no change data feed")
                && t.contains("watermark mode") && !t.contains("DELTA_CANNOT_DESCRIBE_VIEW_HISTORY")
        }
    }

    @Test func aCheckpointAtTheLatestVersionIsStillJustNothingNew() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        let again = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(again.rowsRead == 0)
        #expect(again.inserted == 0 && again.updated == 0)
    }

    func sync(_ sim: RunningSimulator, _ dir: TempDir, startVersion: Int64) throws -> SyncSummary {
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        var options = SyncOptions(table: try QualifiedName(parsing: Self.table), keyColumn: "participant_id",
            outputDirectory: dir.sub("out"))
        options.startVersion = startVersion
        return try CDFSync(client: client, store: try PanelStore(directory: dir.sub("state")), options: options).run()
    }

    @Test func aStartVersionPastTheNextCommitIsRefusedNamingTheFlag() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let message = refusal { _ = try sync(sim, dir, startVersion: 9) }
        #expect(message.contains("start version v9 is after the latest version of \(Self.table), v6"), "\(message)")
        #expect(message.contains("--start-version 6 or lower"), "\(message)")
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: Self.table) == nil)

        // latest + 1 means "from the next commit on": nothing to read yet, no error.
        let waiting = try sync(sim, dir, startVersion: 7)
        #expect(waiting.rowsRead == 0)
        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        let next = try sync(sim, dir, startVersion: 7)
        #expect(next.rowsRead > 0)
        #expect(next.toVersion == sim.sim.latestVersion(table: Self.table).map(Int64.init))
    }
}
