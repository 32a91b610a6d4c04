import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// `cdfsync refresh` end to end over loopback (issue 26 §4): the whole source read again, keys it no longer has
/// marked `"in_source": false` and delivered, nobody deleted, the checkpoint at the snapshot's version; a dry run
/// changes nothing; a key seen again gets `"in_source": true`; a killed refresh marks no one wrongly.
@Suite("Full refresh", .serialized)
struct RefreshTests {
    static let tableYAML = """
        name: people
        connection: {warehouse_id: \(JoinWorkspace.warehouse)}
        source: main.crm.people
        mapping: {external_id: person_id, email: email, country: country, last_updated: updated_at}
        """

    func engine(_ sim: RunningSimulator, _ p: Pipeline, dir: TempDir, store: PanelStore? = nil) throws -> CDFSync {
        let store = try store ?? PanelStore(directory: dir.sub("state"))
        let client = StatementClient(settings: try sim.settings())
        client.retryPolicy.baseDelay = 0.01
        var options = try SyncOptions(pipeline: p, outputDirectory: dir.sub("out"))
        options.batchSize = 7
        return CDFSync(client: client, store: store, options: options)
    }

    func commit(_ sim: RunningSimulator, _ table: String, _ version: Int, _ body: String) throws {
        try sim.sim.appendCommit(table: table, Commit.decode(Data(#"""
            {"version": \#(version), "timestamp": "2026-02-0\#(version)T00:00:00.000Z", "operation": "WRITE", \#(body)}
            """#.utf8)))
    }

    /// `in_source` of each record of the panel that has one.
    func inSource(_ dir: TempDir, store: PanelStore? = nil) throws -> [String: Bool] {
        let store = try store ?? PanelStore(directory: dir.sub("state"), access: .reader)
        var out: [String: Bool] = [:]
        try store.forEachRecord(scope: nil) { r in
            let obj = try JSONSerialization.jsonObject(with: Data(r.record)) as! [String: Any]
            if let v = obj["in_source"] as? Bool { out[r.externalID] = v }
        }
        return out
    }

    /// The delivered change lines, without their sequence numbers.
    func delivered(_ dir: TempDir) throws -> [[String: Any]] {
        guard FileManager.default.fileExists(atPath: dir.sub("out")) else { return [] }
        return try deliveredLines(dir.sub("out"))
    }

    @Test func refreshMarksWhatTheSourceNoLongerHasAndChangeDataResumesAfterIt() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        let p = try PipelineLoader.load(yaml: Self.tableYAML)
        let store = try PanelStore(directory: dir.sub("state"))
        let first = try engine(sim, p, dir: dir, store: store).run()
        #expect(first.mode == .cdf && first.inserted == 39 && first.invalid == 1)
        // v1: persons 3 and 4 are deleted; 9's email becomes invalid (still in the source); 50 is new.
        let broken = JoinWorkspace.personRow(9).replacingOccurrences(of: "p9@example.com", with: "broken")
        try commit(sim, "main.crm.people", 1, #"""
            "delete": [\#(JoinWorkspace.personRow(3)), \#(JoinWorkspace.personRow(4))],
            "update": [{"before": \#(JoinWorkspace.personRow(9)), "after": \#(broken)}],
            "insert": [\#(JoinWorkspace.personRow(50))]
            """#)
        let deliveredBefore = try delivered(dir).count

        // A dry run: counts, changes nothing.
        let dry = try engine(sim, p, dir: dir, store: store).refresh(RefreshOptions(dryRun: true))
        #expect(dry.mode == .refreshDryRun)
        #expect(dry.refresh?.absent == 2 && dry.refresh?.newlyAbsent == 2)
        #expect(dry.refresh?.absentSample == ["3", "4"])
        #expect(dry.refresh?.keys == 39)
        #expect(dry.inserted == 1, "would create 50")
        #expect(try inSource(dir, store: store).isEmpty)
        #expect(try delivered(dir).count == deliveredBefore)
        #expect(try store.checkpoint(pipeline: "people")?.tableVersion == 0)
        #expect(try store.record(externalID: "50", scope: "people") == nil)

        // The refresh.
        var listed: [PanelStore.AbsentKey] = []
        let r = try engine(sim, p, dir: dir, store: store).refresh(RefreshOptions()) { listed.append($0) }
        #expect(r.mode == .refresh && r.status == .succeeded)
        #expect(r.parts.map(\.mode) == [.snapshot] && r.parts.first?.toVersion == 1)
        #expect(r.rowsRead == 39 && r.inserted == 1 && r.invalid == 2, "7 and 9")
        #expect(r.refresh?.absent == 2 && r.refresh?.newlyAbsent == 2)
        #expect(listed.map(\.externalID) == ["3", "4"] && listed.allSatisfy(\.newlyMarked))
        #expect(try inSource(dir, store: store) == ["3": false, "4": false])
        #expect(try store.checkpoint(pipeline: "people")?.tableVersion == 1)
        // Nobody is deleted: 3 and 4 keep their records, marked.
        let three = try #require(try store.record(externalID: "3", scope: "people"))
        let obj = try JSONSerialization.jsonObject(with: Data(three.record)) as! [String: Any]
        #expect(obj["email"] as? String == "p3@example.com" && obj["in_source"] as? Bool == false)
        // 9's row is invalid now but still in the source: not absent, and its record is left as it was.
        #expect(try store.record(externalID: "9", scope: "people") != nil)
        // Delivered like any change: an update per marked key, the insert of 50.
        let lines = try delivered(dir).dropFirst(deliveredBefore)
        let marks = lines.filter { ($0["record"] as? [String: Any])?["in_source"] as? Bool == false }
        #expect(marks.map { $0["external_id"] as! String }.sorted() == ["3", "4"])
        #expect(marks.allSatisfy { $0["op"] as? String == "update" })
        #expect(lines.contains { $0["op"] as? String == "insert" && $0["external_id"] as? String == "50" })
        #expect(r.delivered == lines.count)

        // Again: still absent, nothing new to mark or deliver.
        let again = try engine(sim, p, dir: dir, store: store).refresh(RefreshOptions())
        #expect(again.refresh?.absent == 2 && again.refresh?.newlyAbsent == 0)
        #expect(again.delivered == 0)

        // Change data resumes after the snapshot's version: v2 only. 3 comes back; its change says so.
        try commit(sim, "main.crm.people", 2, #""insert": [\#(JoinWorkspace.personRow(3))]"#)
        let cdf = try engine(sim, p, dir: dir, store: store).run()
        #expect(cdf.mode == .cdf && cdf.parts.map(\.fromVersion) == [2] && cdf.checkpointBefore == 1)
        #expect(cdf.updated == 1 && cdf.rowsRead == 1)
        #expect(try inSource(dir, store: store) == ["3": true, "4": false])
        let back = try delivered(dir).last!
        #expect(back["external_id"] as? String == "3" && back["op"] as? String == "update")
        #expect((back["record"] as? [String: Any])?["in_source"] as? Bool == true)
        let after = try engine(sim, p, dir: dir, store: store).refresh(RefreshOptions())
        #expect(after.refresh?.absent == 1 && after.refresh?.absentSample == ["4"])
        // The run records read back with their findings.
        let records = try store.runs(limit: 10)
            .map { try RunRecord(json: $0.json) }
        #expect(records.first?.refresh?.absent == 1 && records.first?.mode == .refresh)
        #expect(records.contains { $0.mode == .refreshDryRun && $0.refresh?.newlyAbsent == 2 })
    }

    @Test func refreshOfCustomSQLByWatermarkAndBySnapshot() throws {
        for mode in ["watermark", "snapshot"] {
            let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
            let dir = TempDir()
            let p = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: mode, pageSize: 6))
            let store = try PanelStore(directory: dir.sub("state"))
            let first = try engine(sim, p, dir: dir, store: store).run()
            #expect(first.inserted == 31, "\(mode)")
            // Person 2's consent row goes: the join no longer returns them. Person 4's cursor becomes NULL: no page
            // reads them, but the source still has them.
            try commit(sim, "main.crm.consents", 1, #""delete": [\#(JoinWorkspace.consentRow(2))]"#)
            let noCursor = JoinWorkspace.personRow(4).replacingOccurrences(of: "\"2026-01-05T10:00:00.000Z\"", with: "null")
            try commit(sim, "main.crm.people", 1, #""update": [{"before": \#(JoinWorkspace.personRow(4)), "after": \#(noCursor)}]"#)
            let r = try engine(sim, p, dir: dir, store: store).refresh(RefreshOptions())
            #expect(r.mode == .refresh, "\(mode)")
            #expect(r.rowsRead == 39, "\(mode): the whole query, from its first row")
            #expect(r.refresh?.absent == 1 && r.refresh?.absentSample == ["2"], "\(mode)")
            // Not opted in (5, 10, …) and invalid (7) rows are in the source: never absent.
            #expect(try inSource(dir, store: store) == ["2": false], "\(mode)")
            if mode == "watermark" {
                #expect(r.nullCursor == 1)
                #expect(r.readDescription?.hasPrefix("rows from the first row up to ") == true, "\(r.readDescription ?? "")")
                let cp = try store.checkpoint(pipeline: "joined")
                #expect(cp?.watermark != nil)
            }
        }
    }

    @Test func refreshFromTheCLI() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        let file = dir.sub("p.yaml")
        try Self.tableYAML.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try runCLI(["sync", file], port: sim.port, dir: dir).status == 0)
        let gone = (11...14).map(JoinWorkspace.personRow).joined(separator: ",")
        try commit(sim, "main.crm.people", 1, #""delete": [\#(gone)]"#)

        let dry = try runCLI(["refresh", file, "--dry-run", "--show", "2"], port: sim.port, dir: dir)
        #expect(dry.status == 0, "\(dry.output)")
        #expect(dry.output.contains("refresh (dry run) of main.crm.people snapshot at v1"), "\(dry.output)")
        #expect(dry.output.contains("absent         4 key(s) the source no longer has (4 would be marked \"in_source\": false)"))
        #expect(dry.output.contains("    11, 12, … (2 more)"))
        #expect(try inSource(dir).isEmpty)

        let list = dir.sub("absent.ndjson")
        // --quiet, --no-progress: stderr (merged here) carries no log or progress line, stdout is the JSON.
        let json = try runCLI(["refresh", file, "--json", "--quiet", "--no-progress", "--show", "1", "--absent-list", list],
            port: sim.port, dir: dir)
        #expect(json.status == 0, "\(json.output)")
        let obj = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as! [String: Any]
        let keys = (obj["absent_keys"] as! [[String: Any]]).map { $0["external_id"] as! String }
        #expect(keys == ["11", "12", "13", "14"], "every key, whatever --show says")
        let run = obj["run"] as! [String: Any]
        #expect(run["mode"] as? String == "refresh")
        let refresh = run["refresh"] as! [String: Any]
        #expect(refresh["absent"] as? Int == 4 && refresh["newly_absent"] as? Int == 4)
        #expect(refresh["absent_sample"] as? [String] == ["11"])
        #expect(refresh["absent_list"] as? String == list)
        let fileLines = try String(contentsOfFile: list, encoding: .utf8).split(separator: "\n")
        #expect(fileLines.count == 4 && fileLines[0].contains(#""external_id":"11""#) && fileLines[0].contains(#""newly_marked":true"#))
        #expect(try inSource(dir) == ["11": false, "12": false, "13": false, "14": false])

        let runs = try runProcess(try BuiltProduct.cdfsync.path, ["runs", "--state-dir", dir.sub("state")])
        #expect(runs.output.contains("refresh"), "\(runs.output)")
        let text = try runCLI(["refresh", file], port: sim.port, dir: dir)
        #expect(text.output.contains("(0 newly marked \"in_source\": false, 4 marked before)"), "\(text.output)")
    }

    @Test func eventsAndReplayAreNotRefreshed() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        let events = try PipelineLoader.load(yaml: """
            name: ev
            kind: events
            connection: {warehouse_id: \(JoinWorkspace.warehouse)}
            source: main.crm.people
            mapping: {event_id: person_id, timestamp: updated_at}
            """)
        let e = #expect(throws: SyncError.self) { try engine(sim, events, dir: dir).refresh(RefreshOptions()) }
        #expect(e?.message.contains("refresh applies to a participants pipeline") == true)
        #expect(try PanelStore(directory: dir.sub("state")).runs(limit: 1).isEmpty)
    }

    /// SIGKILL the real `cdfsync refresh` while it applies the snapshot and while it marks, then run it again: no
    /// key the source still has is ever marked, and the rerun ends where an uninterrupted refresh does.
    @Test func aRefreshKilledMidwayMarksNoOneWronglyAndARerunCompletes() throws {
        let people = 120
        let removed = Set((1...people).filter { $0 % 4 == 1 }.map(String.init))
        func setUp(_ dir: TempDir) throws -> (RunningSimulator, String) {
            let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json(people: people))
            let file = dir.sub("p.yaml")
            try Self.tableYAML.write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try runCLI(["sync", file], port: sim.port, dir: dir).status == 0)
            let rows = removed.sorted().map { JoinWorkspace.personRow(Int($0)!) }.joined(separator: ",")
            try commit(sim, "main.crm.people", 1, #""delete": [\#(rows)], "insert": [\#(JoinWorkspace.personRow(500))]"#)
            return (sim, file)
        }
        func refresh(_ sim: RunningSimulator, _ file: String, _ dir: TempDir, kill: String?) throws -> Int32 {
            var env = ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin",
                       "CDFSYNC_TEST_REFRESH_SWEEP_CHUNK": "16"]
            if let kill { env["CDFSYNC_TEST_KILL_IN_REFRESH"] = kill }
            return try runProcess(try BuiltProduct.cdfsync.path,
                ["refresh", file, "--batch-size", "10", "--host", "http://127.0.0.1:\(sim.port)", "--warehouse-id",
                 JoinWorkspace.warehouse, "--state-dir", dir.sub("state"), "--output-dir", dir.sub("out")],
                environment: env).status
        }
        func changes(_ dir: TempDir) throws -> [String] {
            try delivered(dir).map { line in
                var l = line
                l["seq"] = nil
                return String(decoding: try JSONSerialization.data(withJSONObject: l, options: [.sortedKeys]), as: UTF8.self)
            }.sorted()
        }

        let reference = TempDir("refresh-ref")
        let (refSim, refFile) = try setUp(reference)
        #expect(try refresh(refSim, refFile, reference, kill: nil) == 0)
        let expected = try inSource(reference)
        #expect(Set(expected.keys) == removed && expected.values.allSatisfy { !$0 })
        let expectedChanges = try changes(reference)

        for kill in ["applied:2", "applied:9", "marked:1", "marked:4", "marked:7"] {
            let dir = TempDir("refresh-kill")
            let (sim, file) = try setUp(dir)
            let status = try refresh(sim, file, dir, kill: kill)
            #expect(status != 0, "\(kill): killed")
            // Whatever is marked is a key the source no longer has.
            let marked = try inSource(dir)
            #expect(marked.allSatisfy { removed.contains($0.key) && !$0.value }, "\(kill): \(marked)")
            if kill == "marked:4" {
                #expect(!marked.isEmpty && marked.count < removed.count, "\(kill): killed midway through marking")
            }
            if kill.hasPrefix("applied") {
                #expect(marked.isEmpty, "\(kill): nothing is marked before the whole source was read")
                #expect(try PanelStore(directory: dir.sub("state"), access: .reader).checkpoint(pipeline: "people")?
                    .tableVersion == 0, "\(kill): the checkpoint waits for the whole snapshot")
            }
            #expect(try refresh(sim, file, dir, kill: nil) == 0, "\(kill): rerun")
            #expect(try inSource(dir) == expected, "\(kill)")
            #expect(try changes(dir) == expectedChanges, "\(kill): the same changes delivered, each once")
            #expect(try PanelStore(directory: dir.sub("state"), access: .reader).checkpoint(pipeline: "people")?
                .tableVersion == 1)
            // No scratch directory is left behind.
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.sub("state"))
            #expect(!left.contains { $0.hasPrefix(ScratchKeySet.directoryPrefix) }, "\(left)")
        }
    }
}
