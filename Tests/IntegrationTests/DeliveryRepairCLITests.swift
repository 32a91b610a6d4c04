import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// A delivery killed part-way is repaired by the next run, also when nothing new arrived (issue 23 §3).
///
/// The real `cdfsync` (a debug build) is SIGKILLed by its test hook `CDFSYNC_TEST_KILL_AT_DELIVERY` just before and
/// just after each `rename(2)` of its delivery (owner file, each segment, the manifest); then the pipeline runs again
/// with no new commits (or is replayed), and the output directory — every segment's lines and bytes, the manifest —
/// the store's delivered cursor and segments, and what the webhook received must be those of a run never killed.
/// Before the fix, a rerun with nothing pending skipped the repair: the committed segment stayed a `.tmp` file with
/// no manifest, and the webhook failed on the missing segment at every run.
@Suite("Delivery repair (killed cdfsync)", .serialized)
struct DeliveryRepairCLITests {
    static let table = "main.research.participants"

    /// A pipeline of every participant (no consent rule) with a segment per apply batch (`segment_max_bytes: 1`; a
    /// batch per statement of at most two versions: four segments) and a webhook at `/_hook/<hook>`.
    static func pipeline(_ dir: TempDir, hook: String, sim: RunningSimulator) throws -> String {
        let path = dir.sub("panel.yaml")
        try """
            name: panel
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: \(table)
            mapping: {external_id: participant_id, email: email}
            sinks:
              - {type: ndjson, directory: \(dir.sub("out")), segment_max_bytes: 1}
              - {type: webhook, url: "\(sim.baseURL)/_hook/\(hook)", batch_size: 100}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    struct Run {
        var killed: Bool
        var status: Int32
        var output: String
    }

    /// Runs `cdfsync` with `arguments` and the state directory of `dir`; `kill` sets the delivery kill switch.
    static func cdfsync(_ arguments: [String], _ dir: TempDir, _ sim: RunningSimulator, kill: String? = nil) throws -> Run {
        var environment = ["DATABRICKS_TOKEN": "dapi-demo-token", "DATABRICKS_HOST": sim.baseURL, "PATH": "/usr/bin:/bin"]
        if let kill { environment["CDFSYNC_TEST_KILL_AT_DELIVERY"] = kill }
        let r = try ChildProcess.run(
            try BuiltProduct.cdfsync.path, arguments + ["--state-dir", dir.sub("state")], environment: environment)
        return Run(killed: r.signaled && r.status == SIGKILL, status: r.status, output: r.output)
    }

    static func sync(_ dir: TempDir, _ sim: RunningSimulator, hook: String, kill: String? = nil,
                     extra: [String] = []) throws -> Run {
        try cdfsync(["sync", try pipeline(dir, hook: hook, sim: sim), "--max-versions-per-statement", "2",
            "--batch-size", "1000000", "--disposition", "inline"] + extra, dir, sim, kill: kill)
    }

    /// What must be identical to an uninterrupted run: the output directory (each segment decompressed and as
    /// stored, the manifest, no other file but the owner file naming this store), the delivered cursor, nothing
    /// pending, and the segments the store recorded.
    struct Delivered: Equatable, CustomStringConvertible {
        var files: [String: [UInt8]]
        var lines: [String: [UInt8]]
        var cursor: UInt64
        var pending: Int
        var segments: [String]

        init(_ dir: TempDir) throws {
            let out = dir.sub("out")
            let store = try PanelStore(directory: dir.sub("state"), access: .reader)
            files = [:]
            lines = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: out) {
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: out + "/" + name)))
                if name == PanelStore.ownerFileName {
                    let owner = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
                    files[name] = Array((owner?["store_id"] as? String == store.storeID ? "this store" : "another").utf8)
                    continue
                }
                files[name] = bytes
                if name.hasSuffix(".ndjson.zst") { lines[name] = try Zstd.decompress(bytes) }
            }
            cursor = try store.deliveredSequence()
            pending = try store.pendingOutboxCount()
            segments = try store.deliveredSegments().map { "\($0.file) \($0.firstSeq)-\($0.lastSeq) \($0.bytesCompressed)" }
        }

        var description: String { "files \(files.keys.sorted()), cursor \(cursor), pending \(pending), segments \(segments)" }
    }

    /// Every change line the webhook `hook` accepted, by sequence, and how many duplicate keys it turned away.
    static func webhookSequences(_ sim: RunningSimulator, _ hook: String) throws -> (seqs: [Int], duplicates: Int) {
        let (accepted, duplicates) = sim.sim.webhookDeliveries(name: hook)
        let seqs = try accepted.flatMap { d in
            (try JSONSerialization.jsonObject(with: Data(d.body)) as? [[String: Any]] ?? []).compactMap { $0["seq"] as? Int }
        }
        return (seqs, duplicates)
    }

    @Test func aRunWithNothingNewRepairsADeliveryKilledAtAnyRename() throws {
        let sim = try RunningSimulator()
        let latest = try #require(sim.sim.latestVersion(table: Self.table))

        let reference = TempDir("repair-ref")
        let clean = try Self.sync(reference, sim, hook: "ref")
        try #require(clean.status == 0, "\(clean.output)")
        let expected = try Delivered(reference)
        #expect(expected.segments.count == 4, "\(expected)")
        #expect(expected.files["manifest.json"] != nil)
        #expect(try Self.webhookSequences(sim, "ref").seqs == Array(1...Int(expected.cursor)))

        var renames: [String: Int] = [:]
        var afterApply = 0
        for when in ["before-rename", "after-rename"] {
            var n = 1
            while n <= 20 {
                defer { n += 1 }
                let point = "\(when):\(n)"
                let hook = "kill-\(when)-\(n)"
                let dir = TempDir("repair-\(when)-\(n)")
                let killed = try Self.sync(dir, sim, hook: hook, kill: point)
                guard killed.killed else {
                    // Past the last rename: the run finished. The hook must have fired at least once.
                    #expect(killed.status == 0, "\(point): \(killed.output)")
                    #expect(n > 1, "the kill switch did not fire: cdfsync must be a debug build (\(killed.output))")
                    renames[when] = n - 1
                    break
                }
                // A file with a final name is always committed.
                let applied: Bool
                do {
                    let store = try PanelStore(directory: dir.sub("state"), access: .reader)
                    let committed = Set(try store.deliveredSegments().map(\.file))
                    let named = try FileManager.default.contentsOfDirectory(atPath: dir.sub("out"))
                        .filter { $0.hasSuffix(".ndjson.zst") }
                    #expect(Set(named).isSubset(of: committed), "\(point): \(named)")
                    applied = try store.checkpoint(pipeline: "panel")?.tableVersion == Int64(latest)
                }

                // The repair run: with everything applied, it has no new commit to read.
                let rerun = try Self.sync(dir, sim, hook: hook, extra: ["--summary-json", dir.sub("rerun.json")])
                #expect(rerun.status == 0, "\(point): \(rerun.output)")
                // Killed before a segment's rename (renames 2-5): the rerun's record says it renamed it.
                if when == "before-rename" && (2...5).contains(n) {
                    let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.sub("rerun.json"))))
                    let warnings = (record as? [String: Any])?["warnings"] as? [String] ?? []
                    #expect(warnings.contains { $0.hasPrefix("delivery repaired: renamed segment changes-") }, "\(point): \(warnings)")
                }
                if applied {
                    afterApply += 1
                    #expect(rerun.output.contains("no new commits"), "\(point): \(rerun.output)")
                }
                #expect(try Delivered(dir) == expected, "\(point)")
                let (seqs, duplicates) = try Self.webhookSequences(sim, hook)
                #expect(seqs == Array(1...Int(expected.cursor)) && duplicates == 0,
                    "\(point): the webhook got every change exactly once (\(seqs.count) lines, \(duplicates) duplicates)")
            }
        }
        // The owner file, four segments, the manifest.
        #expect(renames == ["before-rename": 6, "after-rename": 6], "\(renames)")
        #expect(afterApply == 12, "every kill lands after everything was applied: the rerun has nothing new to read")
    }

    /// A replay repairs a killed delivery too, and `status` — which writes nothing — says beforehand what it will
    /// repair, in text and JSON, and that nothing is left afterwards.
    @Test func statusSaysWhatAReplayThenRepairs() throws {
        let sim = try RunningSimulator()
        let latest = try #require(sim.sim.latestVersion(table: Self.table))
        let reference = TempDir("repair-ref")
        try #require(try Self.sync(reference, sim, hook: "ref").status == 0)
        let expected = try Delivered(reference)

        // Killed just before the last segment's rename (renames: owner file, segments 1-4, manifest): everything is
        // committed, nothing is pending, so only the repair can make the output whole.
        let dir = TempDir("repair-replay")
        try #require(try Self.sync(dir, sim, hook: "replay", kill: "before-rename:5").killed)
        let out = dir.sub("out")
        let unrenamed: String
        do {
            let store = try PanelStore(directory: dir.sub("state"), access: .reader)
            #expect(try store.pendingOutboxCount() == 0)
            unrenamed = try #require(try store.deliveredSegments().last?.file)
            #expect(!FileManager.default.fileExists(atPath: out + "/" + unrenamed))
        }
        // No manifest yet, and (as a kill while writing a segment would leave) a leftover of an uncommitted attempt.
        let leftover = "changes-999999999999.ndjson.zst.tmp"
        try Data([0x28]).write(to: URL(fileURLWithPath: out + "/" + leftover))

        func snapshot() throws -> [String: Data] {
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: out) {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))
            }
            files["state/data.mdb"] = try Data(contentsOf: URL(fileURLWithPath: dir.sub("state/data.mdb")))
            return files
        }
        let before = try snapshot()
        let text = try Self.cdfsync(["status"], dir, sim)
        #expect(text.status == 0, "\(text.output)")
        let line = try #require(text.output.split(separator: "\n").first { $0.contains(PanelStore.absolute(out)) },
            "\(text.output)")
        #expect(line.contains("(panel)  the next run repairs: segment \(unrenamed) committed but not renamed; "
            + "1 leftover file(s) of an uncommitted delivery to remove (\(leftover)); manifest missing"), "\(line)")
        let json = try Self.cdfsync(["status", "--json"], dir, sim)
        let status = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
        let dirs = try #require(status["output_directories"] as? [[String: Any]])
        #expect(dirs.count == 1)
        #expect(dirs.first?["directory"] as? String == PanelStore.absolute(out))
        #expect(dirs.first?["pipelines"] as? [String] == ["panel"])
        #expect(dirs.first?["repair_needed"] as? Bool == true)
        #expect(dirs.first?["unrenamed_segment"] as? String == unrenamed)
        #expect(dirs.first?["leftovers"] as? [String] == [leftover])
        #expect(dirs.first?["manifest"] as? String == "missing")
        #expect(try snapshot() == before, "status wrote nothing")

        let replay = try Self.cdfsync(["replay", try Self.pipeline(dir, hook: "replay", sim: sim),
            "--from-version", "\(latest)", "--to-version", "\(latest)"], dir, sim)
        #expect(replay.status == 0, "\(replay.output)")
        #expect(try Delivered(dir) == expected)
        let after = try Self.cdfsync(["status"], dir, sim)
        #expect(after.output.contains("\(PanelStore.absolute(out)) (panel)  intact, nothing to repair"), "\(after.output)")
    }
}
