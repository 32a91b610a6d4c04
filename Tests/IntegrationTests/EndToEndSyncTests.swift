import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// The real client over loopback HTTP against the real simulator, with real LMDB files and real zstd.
@Suite("End to end: CDF sync over loopback")
struct EndToEndSyncTests {
    @Test func syncAppendSyncMatchesLatestPostImagePerKey() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 37))
        let dir = TempDir()
        let first = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(first.checkpointBefore == nil && first.fromVersion == 0)
        #expect(first.toVersion == sim.sim.latestVersion(table: "main.research.participants").map(Int64.init))
        #expect(first.inserted > 0)
        #expect(try panelContents(dir.sub("state")) == expectedPanel(workspace: fixturePath("demo-workspace.json")))

        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        let second = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(second.checkpointBefore == first.toVersion)
        #expect(second.fromVersion == first.toVersion.map { $0 + 1 }, "the first version read is the one after the checkpoint")
        #expect(second.inserted + second.updated > 0)
        #expect(second.deletesIgnored > 0, "the appended commits delete keys; deletes are counted, not applied")
        let expected = try expectedPanel(workspace: fixturePath("demo-workspace.json"),
                                         extraCommits: [fixturePath("demo-commits-2.json")])
        #expect(try panelContents(dir.sub("state")) == expected)

        // Delivered output: one line per insert/update, and replaying the lines in order rebuilds the panel.
        let lines = try deliveredLines(dir.sub("out"))
        #expect(lines.count == first.inserted + first.updated + second.inserted + second.updated)
        var rebuilt: [String: [String: String?]] = [:]
        for l in lines {
            let rec = (l["record"] as! [String: Any]).mapValues { $0 as? String }
            rebuilt[l["external_id"] as! String] = rec
        }
        #expect(rebuilt == expected)

        // A third run with no new commits changes nothing and says so.
        let filesBefore = try FileManager.default.contentsOfDirectory(atPath: dir.sub("out")).sorted()
        let third = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(third.noNewCommits)
        #expect(third.render().contains("no new commits"))
        #expect(third.inserted == 0 && third.updated == 0 && third.rowsRead == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.sub("out")).sorted() == filesBefore)
        #expect(try panelContents(dir.sub("state")) == expected)
        let store = try PanelStore(directory: dir.sub("state"))
        #expect(try store.runs(limit: 10).count == 3, "every run leaves an audit record")
    }

    /// Keys are handed from the result to the panel as bytes when they are ASCII and through `String` otherwise;
    /// keys with non-ASCII letters, an emoji, and characters the result escapes must arrive exactly as the table
    /// holds them, found by their id, updated in place by later commits, and delivered under their id.
    @Test func nonASCIIAndEscapedKeysArriveAsTheTableHoldsThem() throws {
        let dir = TempDir()
        let renamed = [("P-000001", #"P-İstanbul-000001"#, "P-İstanbul-000001"), ("P-000002", "P-😀-000002", "P-😀-000002"),
                       ("P-000003", #"P-\"q\"-000003"#, "P-\"q\"-000003"), ("P-000004", #"P-tab\t-000004"#, "P-tab\t-000004")]
        var text = try String(contentsOfFile: fixturePath("demo-workspace.json"), encoding: .utf8)
        for (old, json, _) in renamed {
            #expect(text.contains("\"\(old)\""), "the demo workspace no longer has \(old)")
            text = text.replacingOccurrences(of: "\"\(old)\"", with: "\"\(json)\"")
        }
        let workspace = dir.sub("workspace.json")
        try text.write(toFile: workspace, atomically: true, encoding: .utf8)
        let sim = try RunningSimulator(workspacePath: workspace, configuration: .init(rowsPerChunk: 37))
        let summary = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(summary.inserted > 0 && summary.invalid == 0)
        let panel = try panelContents(dir.sub("state"))
        #expect(panel == (try expectedPanel(workspace: workspace)))
        let store = try PanelStore(directory: dir.sub("state"))
        let delivered = Set(try deliveredLines(dir.sub("out")).map { $0["external_id"] as! String })
        for (old, _, id) in renamed {
            #expect(panel[id]?["participant_id"] == .some(id), "\(id) is not in the panel under its id")
            #expect(panel[old] == nil)
            #expect(try store.participantID(externalID: id, scope: "main.research.participants") != nil)
            #expect(delivered.contains(id), "\(id) was not delivered under its id")
        }
    }

    @Test func smallBatchesGiveTheSamePanelAndIntermediateCheckpointsNeverOvertakeAppliedRows() throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 10))
        let dir = TempDir()
        let summary = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"), batchSize: 25)
        #expect(try panelContents(dir.sub("state")) == expectedPanel(workspace: fixturePath("demo-workspace.json")))
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "main.research.participants")?.tableVersion
            == summary.toVersion)
    }

    @Test(arguments: ["truncate", "wrong_arity", "non_string"])
    func malformedChunkFailsTheRunWithoutMovingTheCheckpoint(_ corruption: String) throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 50))
        let dir = TempDir()
        // Chunk 1 (the first chunk GET) of the table_changes statement comes back damaged, once.
        _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: "/api/2.0/sql/statements/"), count: 1,
                                   kind: .corruptBody, message: corruption))
        var failure: SyncFailure?
        do {
            _ = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        } catch let f as SyncFailure {
            failure = f
        }
        let f = try #require(failure)
        let text = "\(f)"
        #expect(text.contains("malformed result"), "\(text)")
        #expect(text.contains("chunk 1"), "names the chunk: \(text)")
        #expect(text.range(of: #"at byte \d+"#, options: .regularExpression) != nil, "names the byte offset: \(text)")
        #expect(text.range(of: #"statement [0-9a-f]{8}-[0-9a-f]{4}-"#, options: .regularExpression) != nil, "names the statement: \(text)")
        do {
            let store = try PanelStore(directory: dir.sub("state"))
            #expect(try store.checkpoint(pipeline: "main.research.participants") == nil)
            #expect(try store.count() == 0, "nothing from the damaged statement was applied")
            #expect(try store.runs(limit: 1).first.map { String(decoding: $0.json, as: UTF8.self).contains("\"failed\"") } == true)
        }

        // The fault was one-shot: a rerun on good data succeeds and loses nothing.
        _ = try runSync(sim, state: dir.sub("state"), output: dir.sub("out"))
        #expect(try panelContents(dir.sub("state")) == expectedPanel(workspace: fixturePath("demo-workspace.json")))
    }

    @Test func wrongTokenUnknownTableAndUnreachableHostEachGiveOneClearError() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        #expect {
            _ = try runSync(sim, state: dir.sub("a"), output: dir.sub("o"), token: "dapi-wrong")
        } throws: { e in
            let u = (e as? SyncFailure)?.underlying as? DatabricksError
            return u?.category == .authenticationFailed && !"\(e)".contains("\n") && !"\(e)".contains("dapi-wrong")
        }
        #expect {
            _ = try runSync(sim, state: dir.sub("b"), output: dir.sub("o"), table: "main.research.nope")
        } throws: { e in
            ((e as? SyncFailure)?.underlying as? DatabricksError)?.category == .tableNotFound
        }
        // A port nobody listens on.
        let closed = try RunningSimulator()
        let port = closed.port
        closed.sim.stop()
        let client = StatementClient(settings: try ConnectionSettings(host: "http://127.0.0.1:\(port)",
            warehouseID: "8a1c2f3d4e5b6a70", authentication: .personalAccessToken(Secret("x"))))
        client.retryPolicy.maxAttempts = 2
        client.retryPolicy.baseDelay = 0.01
        let store = try PanelStore(directory: dir.sub("c"))
        #expect {
            _ = try CDFSync(client: client, store: store, options: SyncOptions(
                table: QualifiedName(catalog: "main", schema: "research", table: "participants"),
                keyColumn: "participant_id", outputDirectory: dir.sub("o"))).run()
        } throws: { e in
            ((e as? SyncFailure)?.underlying as? DatabricksError)?.category == .hostUnreachable
        }
    }
}

/// The retention warning: when the oldest version a run still has to read was committed longer ago than the table's
/// `delta.deletedFileRetentionDuration`, a VACUUM may already have removed its change data.
@Suite("Retention warning")
struct RetentionWarningTests {
    /// v6 of the demo table, and v7 of demo-commits-2.json.
    static let v6 = Date(timeIntervalSince1970: 1_772_805_600)  // 2026-03-06T14:00:00Z
    static let v7 = Date(timeIntervalSince1970: 1_772_989_200)  // 2026-03-08T17:00:00Z

    func sync(_ sim: RunningSimulator, _ dir: TempDir, at now: Date) throws -> SyncSummary {
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        let options = SyncOptions(
            table: try QualifiedName(parsing: "main.research.participants"), keyColumn: "participant_id",
            outputDirectory: dir.sub("out"))
        let sync = CDFSync(client: client, store: try PanelStore(directory: dir.sub("state")), options: options)
        sync.now = { now }
        return try sync.run()
    }

    func retentionWarning(_ s: SyncSummary) -> String? { s.warnings.first { $0.contains("deletedFileRetentionDuration") } }

    func append(_ sim: RunningSimulator, at time: String, properties: [String: String]? = nil) throws {
        let version = try #require(sim.sim.latestVersion(table: "main.research.participants")) + 1
        var commit: [String: Any] = ["version": version, "timestamp": time, "operation": "WRITE", "insert": [
            ["p-late-\(version)", "Late", "Joiner", "late\(version)@example.com", "+15550000\(version)", "Acme", "US",
             "Denver", "Analyst", "b2b", "opted_in", time]]]
        if let properties {
            commit = ["version": version, "timestamp": time, "operation": "SET TBLPROPERTIES", "set_properties": properties]
        }
        try sim.sim.appendCommit(table: "main.research.participants", Commit.decode(JSONSerialization.data(withJSONObject: commit)))
    }

    @Test func theOldestVersionStillToReadIsNamedWithTheTablesRetention() throws {
        #expect(ISO8601DateFormatter().string(from: Self.v6) == "2026-03-06T14:00:00Z")
        #expect(ISO8601DateFormatter().string(from: Self.v7) == "2026-03-08T17:00:00Z")
        let sim = try RunningSimulator()
        let (early, late) = (TempDir(), TempDir())
        _ = try sync(sim, early, at: Self.v6 + 3600)
        _ = try sync(sim, late, at: Self.v6 + 3600)
        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        // Six days after v7: within the default 7 days, no warning.
        let recent = try sync(sim, early, at: Self.v7 + 6 * 86_400)
        #expect(retentionWarning(recent) == nil, "\(recent.warnings)")
        // Eight days after v7: v7 is older than the retention, and the warning says so.
        let stale = try sync(sim, late, at: Self.v7 + 8 * 86_400)
        let warning = try #require(retentionWarning(stale))
        #expect(warning.contains("v7, the oldest change still to read, was committed 192 h ago"), "\(warning)")
        #expect(warning.contains("interval 7 days"), "\(warning)")
        #expect(stale.render().contains(warning))
    }

    @Test func aQuietTableWithARecentCommitIsNotAtRisk() throws {
        // The checkpoint (v6) is a month old, but the only version to read was committed an hour ago.
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try sync(sim, dir, at: Self.v6 + 3600)
        try append(sim, at: "2026-04-06T14:00:00.000Z")
        let s = try sync(sim, dir, at: Self.v6 + 31 * 86_400 + 3600)
        #expect(s.inserted == 1)
        #expect(retentionWarning(s) == nil, "\(s.warnings)")
    }

    @Test func aLongerRetentionOnTheTableIsHonoured() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try sync(sim, dir, at: Self.v6 + 3600)
        try append(sim, at: "2026-03-07T09:00:00.000Z", properties: ["delta.deletedFileRetentionDuration": "interval 30 days"])
        try append(sim, at: "2026-03-07T10:00:00.000Z")
        let s = try sync(sim, dir, at: Self.v6 + 9 * 86_400)
        #expect(s.inserted == 1)
        #expect(retentionWarning(s) == nil, "\(s.warnings)")
    }
}
