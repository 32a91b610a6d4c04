import Foundation
import Testing

@testable import CDFSyncStorage

struct InjectedCrash: Error {}

/// Applies the same deterministic history to `store`: inserts, an update, an unchanged replay.
func applyHistory(_ store: PanelStore, rows: Int = 40) throws {
    let first = (0..<rows).map { i in
        PanelStore.Change(externalID: String(format: "ext-%03d", i), commitVersion: 1, record: record("n\(i)", i))
    }
    // Several applies (one outbox frame each), so deliveries have frame boundaries to rotate at.
    for start in stride(from: 0, to: rows, by: 5) {
        _ = try store.apply(Array(first[start..<min(rows, start + 5)]), scope: "conn/src", pipeline: "p",
            checkpoint: .init(tableVersion: 1))
    }
    var second = first.prefix(rows / 2).map { PanelStore.Change(externalID: $0.externalID, commitVersion: 2, record: $0.record) }
    second[3].record = record("changed", 3)
    _ = try store.apply(second, scope: "conn/src", pipeline: "p", checkpoint: .init(tableVersion: 2))
}

/// Name → bytes of every file in `directory` but the owner file (which names a store: it differs between two
/// stores given the same history).
func directoryContents(_ directory: String) throws -> [String: Data] {
    var result: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name != PanelStore.ownerFileName {
        result[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
    }
    return result
}

@Suite struct DeliveryTests {
    @Test func segmentsHoldExactlyTheExpectedNDJSONLines() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            _ = try store.apply(
                [
                    .init(externalID: "b\"q", commitVersion: 7, record: bytes(#"{"email":"b@x.io"}"#)),
                    .init(externalID: "a", commitVersion: 7, record: bytes(#"{"email":"a@x.io"}"#)),
                ], scope: "c1/s", pipeline: "p", checkpoint: nil)
            _ = try store.apply(
                [.init(externalID: "a", commitVersion: 9, record: bytes(#"{"email":"a2@x.io"}"#))],
                scope: "c1/s", pipeline: "p", checkpoint: nil)
            let out = dir + "/out"
            let outcome = try store.deliver(to: out)
            #expect(outcome == .init(segmentsWritten: 1, recordsDelivered: 3, files: ["changes-000000000001-000000000003.ndjson.zst"]))
            let lines = try deliveredLines(out, outcome.files)
            #expect(lines == [
                #"{"seq":1,"op":"insert","participant_id":1,"scope":"c1/s","external_id":"a","commit_version":7,"record":{"email":"a@x.io"}}"#,
                #"{"seq":2,"op":"insert","participant_id":2,"scope":"c1/s","external_id":"b\"q","commit_version":7,"record":{"email":"b@x.io"}}"#,
                #"{"seq":3,"op":"update","participant_id":1,"scope":"c1/s","external_id":"a","commit_version":9,"record":{"email":"a2@x.io"}}"#,
            ])
            for line in lines { _ = try jsonObject(line) }  // each line is valid JSON
            #expect(try store.pendingOutboxCount() == 0)
            #expect(try store.deliveredSequence() == 3)

            let manifest = try jsonObject(String(decoding: try Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json")), as: UTF8.self))
            #expect(manifest["delivered_seq"] as? Int == 3)
            let segments = try #require(manifest["segments"] as? [[String: Any]])
            #expect(segments.count == 1)
            #expect(segments[0]["file"] as? String == outcome.files[0])
            #expect(segments[0]["first_seq"] as? Int == 1 && segments[0]["last_seq"] as? Int == 3)
            #expect(segments[0]["records"] as? Int == 3)
            let rawSize = lines.map { $0.utf8.count + 1 }.reduce(0, +)
            #expect(segments[0]["bytes_uncompressed"] as? Int == rawSize)
            let fileSize = try FileManager.default.attributesOfItem(atPath: out + "/" + outcome.files[0])[.size] as? Int
            #expect(segments[0]["bytes_compressed"] as? Int == fileSize)

            // Nothing pending: no new segment, same files.
            let before = try directoryContents(out)
            #expect(try store.deliver(to: out) == .init())
            #expect(try directoryContents(out) == before)
            // More changes continue the sequence in a new segment.
            _ = try store.apply([.init(externalID: "c", commitVersion: 10, record: record("c"))], scope: "c1/s",
                pipeline: "p", checkpoint: nil)
            let next = try store.deliver(to: out)
            #expect(next.files == ["changes-000000000004-000000000004.ndjson.zst"])
            #expect(try store.deliveredSegments().map(\.file) == outcome.files + next.files)
        }
    }

    @Test func segmentsRotateBySize() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            try applyHistory(store, rows: 40)
            let pending = try store.pendingOutboxCount()
            #expect(pending == 41)  // 40 inserts + 1 update; 19 unchanged rows produce nothing
            let out = dir + "/out"
            let maxBytes = 1000
            let outcome = try store.deliver(to: out, segmentMaxBytes: maxBytes)
            #expect(outcome.recordsDelivered == 41)
            #expect(outcome.segmentsWritten > 2)
            #expect(try segmentFiles(out) == outcome.files)
            let infos = try store.deliveredSegments()
            #expect(infos.map(\.file) == outcome.files)
            var expectedFirst: UInt64 = 1
            for (i, info) in infos.enumerated() {
                #expect(info.firstSeq == expectedFirst)  // contiguous: no gaps, no overlaps
                expectedFirst = info.lastSeq + 1
                let lines = try deliveredLines(out, [info.file])
                #expect(lines.count == info.records)
                let size = lines.map { $0.utf8.count + 1 }.reduce(0, +)
                #expect(size == info.bytesUncompressed)
                if i < infos.count - 1 {
                    // Rotated at the first frame boundary (one apply = 5 lines here) at or past the size.
                    #expect(size >= maxBytes)
                    let lastFrame = lines.suffix(5).map { $0.utf8.count + 1 }.reduce(0, +)
                    #expect(size - lastFrame < maxBytes)
                }
            }
            #expect(expectedFirst == 42)
            let seqs = try deliveredLines(out, outcome.files).map { try jsonObject($0)["seq"] as? Int }
            #expect(seqs == (1...41).map { $0 })
        }
    }

    @Test func leftoversOfACrashedAttemptAreReplaced() throws {
        try withTemporaryDirectory { dir in
            // Reference: an uninterrupted delivery.
            let reference = try PanelStore(directory: dir + "/ref-db")
            try applyHistory(reference)
            _ = try reference.deliver(to: dir + "/ref-out", segmentMaxBytes: 1500)
            let expected = try directoryContents(dir + "/ref-out")

            // A crashed attempt of this store (which claimed the directory before writing anything) left: a renamed
            // segment never committed (different range, from another size setting), a half-written temporary file
            // and a temporary manifest.
            let store = try PanelStore(directory: dir + "/db")
            try applyHistory(store)
            let out = dir + "/out"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try store.claim(out)
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: out + "/changes-000000000001-000000000007.ndjson.zst"))
            try Data([0x28, 0xB5]).write(to: URL(fileURLWithPath: out + "/changes-000000000001.ndjson.zst.tmp"))
            try Data("{".utf8).write(to: URL(fileURLWithPath: out + "/manifest.json.tmp"))
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: out + "/README"))

            _ = try store.deliver(to: out, segmentMaxBytes: 1500)
            var actual = try directoryContents(out)
            #expect(actual.removeValue(forKey: "README") == Data("keep me".utf8))
            #expect(actual == expected)
        }
    }

    /// Crashes delivery at every step it has, then reruns it, and checks the result is byte-identical to an
    /// uninterrupted run: no duplicates, no gaps, same manifest.
    @Test func crashAtAnyStepThenRerunGivesIdenticalOutput() throws {
        try withTemporaryDirectory { dir in
            let reference = try PanelStore(directory: dir + "/ref-db")
            try applyHistory(reference)
            var steps: [PanelStore.DeliveryStep] = []
            reference.deliveryHook = { steps.append($0) }
            _ = try reference.deliver(to: dir + "/ref-out", segmentMaxBytes: 1200)
            let expected = try directoryContents(dir + "/ref-out")
            #expect(steps.count > 6)  // several segments, each with three steps, plus the manifest step

            for crashAt in steps.indices {
                let store = try PanelStore(directory: dir + "/db-\(crashAt)")
                try applyHistory(store)
                let out = dir + "/out-\(crashAt)"
                var seen = 0
                store.deliveryHook = { _ in
                    if seen == crashAt { throw InjectedCrash() }
                    seen += 1
                }
                #expect(throws: InjectedCrash.self) { try store.deliver(to: out, segmentMaxBytes: 1200) }
                // A consumer watching the directory never sees a final-named segment that is not committed.
                let committed = Set(try store.deliveredSegments().map(\.file))
                #expect(Set(try segmentFiles(out)).isSubset(of: committed), "crash at step \(crashAt): \(steps[crashAt])")
                store.deliveryHook = nil
                _ = try store.deliver(to: out, segmentMaxBytes: 1200)
                #expect(try directoryContents(out) == expected, "crash at step \(crashAt): \(steps[crashAt])")
                #expect(try store.pendingOutboxCount() == 0)
                let seqs = try deliveredLines(out, try segmentFiles(out)).map { try jsonObject($0)["seq"] as? Int }
                #expect(seqs == (1...41).map { $0 })
            }
        }
    }

    @Test func crashBetweenCommitAndRenameIsCompletedByTheNextDelivery() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            try applyHistory(store)
            let out = dir + "/out"
            store.deliveryHook = { if case .segmentCommitted = $0 { throw InjectedCrash() } }
            #expect(throws: InjectedCrash.self) { try store.deliver(to: out) }
            #expect(try segmentFiles(out).isEmpty)
            #expect(try store.pendingOutboxCount() == 0)  // committed
            store.deliveryHook = nil
            let again = try store.deliver(to: out)
            #expect(again.segmentsWritten == 0 && again.recordsDelivered == 0 && again.files.isEmpty)  // nothing new ...
            #expect(try segmentFiles(out) == ["changes-000000000001-000000000041.ndjson.zst"])  // ... but renamed
            #expect(again.repairs.first?.hasPrefix("renamed segment changes-000000000001-000000000041.ndjson.zst")
                == true, "\(again.repairs)")
            #expect(again.repairs.contains { $0.contains("missing manifest.json") }, "\(again.repairs)")
            #expect(try deliveredLines(out, try segmentFiles(out)).count == 41)
            #expect(!(try FileManager.default.contentsOfDirectory(atPath: out)).contains { $0.hasSuffix(".tmp") })
        }
    }

    @Test func consumedSegmentsMayBeRemovedByTheConsumer() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            try applyHistory(store)
            let out = dir + "/out"
            let first = try store.deliver(to: out, segmentMaxBytes: 1500)
            for file in first.files { try FileManager.default.removeItem(atPath: out + "/" + file) }
            _ = try store.apply([.init(externalID: "late", commitVersion: 9, record: record("late"))], scope: "conn/src",
                pipeline: "p", checkpoint: nil)
            let second = try store.deliver(to: out, segmentMaxBytes: 1500)
            #expect(second.files == ["changes-000000000042-000000000042.ndjson.zst"])
            #expect(try segmentFiles(out) == second.files)
        }
    }

    @Test func crashAfterCommitBeforeManifestIsRepairedByTheNextDelivery() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            try applyHistory(store)
            let out = dir + "/out"
            store.deliveryHook = { if $0 == .beforeManifest { throw InjectedCrash() } }
            #expect(throws: InjectedCrash.self) { try store.deliver(to: out) }
            #expect(!FileManager.default.fileExists(atPath: out + "/manifest.json"))
            store.deliveryHook = nil
            var again = try store.deliver(to: out)
            #expect(again.repairs.count == 1 && again.repairs[0].contains("missing manifest.json"), "\(again.repairs)")
            again.repairs = []
            #expect(again == .init())  // everything was already committed
            let manifest = try jsonObject(String(decoding: try Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json")), as: UTF8.self))
            #expect((manifest["segments"] as? [Any])?.count == 1)
            #expect(manifest["delivered_seq"] as? Int == 41)
        }
    }
}

/// `deliveryRepairs()`, what `cdfsync status` shows: what the next delivery would repair, found without changing a
/// file.
@Suite struct DeliveryRepairTests {
    @Test func whatTheNextDeliveryRepairsIsFoundWithoutChangingAnything() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            let out = dir + "/out"
            let abs = PanelStore.absolute(out)
            try store.setDeliveryDirectory(out, pipeline: "p")
            try applyHistory(store)
            // Killed between the second segment's commit and its rename.
            var committed = 0
            store.deliveryHook = {
                if case .segmentCommitted = $0 { committed += 1; if committed == 2 { throw InjectedCrash() } }
            }
            #expect(throws: InjectedCrash.self) { try store.deliver(to: out, segmentMaxBytes: 1200) }
            store.deliveryHook = nil
            let segments = try store.deliveredSegments()
            try #require(segments.count == 2)
            // An attempt that died before its commit, and a temporary manifest.
            let leftover = PanelStore.temporaryFileName(first: try store.deliveredSequence() + 1)
            try Data([0x28]).write(to: URL(fileURLWithPath: out + "/" + leftover))
            try Data("{".utf8).write(to: URL(fileURLWithPath: out + "/manifest.json.tmp"))
            let before = try directoryContents(out)

            let repairs = try store.deliveryRepairs()
            #expect(repairs == [PanelStore.DeliveryRepair(directory: abs, pipelines: ["p"],
                unrenamedSegment: segments[1].file, leftovers: [leftover, "manifest.json.tmp"], manifest: .missing)])
            #expect(repairs.first?.items == ["segment \(segments[1].file) committed but not renamed",
                "2 leftover file(s) of an uncommitted delivery to remove (\(leftover), manifest.json.tmp)",
                "manifest missing"])
            #expect(try directoryContents(out) == before, "looking changed nothing")

            let outcome = try store.deliver(to: out, segmentMaxBytes: 1200)
            #expect(outcome.repairs.first?.hasPrefix("renamed segment \(segments[1].file)") == true, "\(outcome.repairs)")
            #expect(outcome.repairs.contains { $0.contains(leftover) }, "\(outcome.repairs)")
            let after = try store.deliveryRepairs()
            #expect(after.count == 1 && after.allSatisfy { !$0.isNeeded && $0.items.isEmpty }, "\(after)")
            // A manifest changed by hand is stale (the next delivery rewrites it) ...
            let manifest = try Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json"))
            try Data("{}".utf8).write(to: URL(fileURLWithPath: out + "/manifest.json"))
            #expect(try store.deliveryRepairs().map(\.manifest) == [.stale])
            _ = try store.deliver(to: out, segmentMaxBytes: 1200)
            #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json")) == manifest)
            // ... and a directory another store took cannot be delivered into.
            try Data(#"{"store_id":"someone-else","state_dir":"/elsewhere"}"#.utf8)
                .write(to: URL(fileURLWithPath: out + "/" + PanelStore.ownerFileName))
            let taken = try store.deliveryRepairs()
            #expect(taken.count == 1 && taken[0].problem?.contains("belongs to another state store") == true, "\(taken)")
            #expect(taken.first?.items.first?.hasPrefix("cannot deliver here: ") == true)
        }
    }

    /// A delivery SIGKILLed while writing a segment into another pipeline's directory leaves its temporary file
    /// there (a thrown error removes it; a kill cannot): the next delivery, whichever pipeline's, removes it.
    @Test func aDeliveryOfEitherPipelineCleansEveryDirectoryTheStoreOwns() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            let (people, other) = (dir + "/out-people", dir + "/out-other")
            try DeliveryRoutingTests().applyTwoPipelines(store, people: people, other: other)
            _ = try store.deliver(to: people)
            let before = try directoryContents(other)
            let leftover = PanelStore.temporaryFileName(first: try store.deliveredSequence() + 1)
            try Data([0x28, 0xB5]).write(to: URL(fileURLWithPath: other + "/" + leftover))
            let found = try store.deliveryRepairs()
            #expect(found.map(\.pipelines) == [["other"], ["people"]])
            #expect(found.map(\.leftovers) == [[leftover], []])
            let outcome = try store.deliver(to: people)
            #expect(outcome.repairs == ["removed 1 leftover file(s) of an uncommitted delivery from "
                + PanelStore.absolute(other) + ": " + leftover])
            #expect(try directoryContents(other) == before)
            #expect(try store.deliveryRepairs().allSatisfy { !$0.isNeeded })
        }
    }

    /// Nothing pending, nothing to repair: a delivery rewrites no file (the manifest is compared, not rewritten).
    @Test func anIntactDirectoryIsLeftAlone() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            let out = dir + "/out"
            try applyHistory(store)
            _ = try store.deliver(to: out, segmentMaxBytes: 1200)
            let manifest = out + "/manifest.json"
            let inode = try FileManager.default.attributesOfItem(atPath: manifest)[.systemFileNumber] as? UInt64
            var renames = 0
            store.deliveryHook = { if case .beforeRename = $0 { renames += 1 } }
            let again = try store.deliver(to: out, segmentMaxBytes: 1200)
            #expect(again == .init() && renames == 0)
            #expect(try FileManager.default.attributesOfItem(atPath: manifest)[.systemFileNumber] as? UInt64 == inode)
        }
    }
}

/// A delivery directory belongs to the store that first delivered into it (`cdfsync-store.json`): another store —
/// a second state directory, or a new one pointed at an old one's output — would take its segments for leftovers
/// of a crash and delete them, and number its own from 1 (the same file names).
@Suite struct DeliveryDirectoryOwnerTests {
    @Test func aSecondStoreIsRefusedAndTheFirstStoresFilesStayAsTheyWere() throws {
        try withTemporaryDirectory { dir in
            let out = dir + "/out"
            let first = try PanelStore(directory: dir + "/a")
            try applyHistory(first)
            _ = try first.deliver(to: out, segmentMaxBytes: 1500)
            let owner = try #require(try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: out + "/" + PanelStore.ownerFileName))) as? [String: Any])
            #expect(owner["store_id"] as? String == first.storeID)
            #expect(owner["state_dir"] as? String == dir + "/a")
            let before = try directoryContents(out)

            let second = try PanelStore(directory: dir + "/b")
            try applyHistory(second, rows: 10)
            #expect(first.storeID != second.storeID)
            for attempt in [{ try second.checkDeliveryDirectory(out) }, { _ = try second.deliver(to: out) }] {
                let error = try #require(throws: StorageError.self) { try attempt() }
                #expect(error.code == .directoryTaken)
                #expect(error.message.contains("delivery directory \(out) belongs to another state store (state directory \(dir)/a"),
                    "\(error.message)")
                #expect(error.message.contains("its own output directory"), "\(error.message)")
            }
            #expect(try directoryContents(out) == before, "nothing of the first store's output was touched")
            #expect(try second.pendingOutboxCount() > 0, "the refused store keeps its changes for a directory of its own")
            _ = try second.deliver(to: dir + "/out-b")
            #expect(try second.pendingOutboxCount() == 0)
            // The owner delivers on as before.
            try applyHistory(first, rows: 60)
            #expect(try first.deliver(to: out, segmentMaxBytes: 1500).recordsDelivered > 0)
        }
    }

    @Test func aNewStoreIsRefusedADirectoryOfSegmentsWithoutAnOwnerFile() throws {
        try withTemporaryDirectory { dir in
            // Segments delivered before owner files existed (the file removed to recreate that directory).
            let out = dir + "/out"
            let old = try PanelStore(directory: dir + "/old")
            try applyHistory(old)
            _ = try old.deliver(to: out, segmentMaxBytes: 1500)
            try FileManager.default.removeItem(atPath: out + "/" + PanelStore.ownerFileName)
            let before = try directoryContents(out)

            let fresh = try PanelStore(directory: dir + "/new")
            try applyHistory(fresh)
            let error = try #require(throws: StorageError.self) { _ = try fresh.deliver(to: out, segmentMaxBytes: 1500) }
            #expect(error.code == .directoryTaken)
            #expect(error.message.contains("did not write (it has delivered through change 0)"), "\(error.message)")
            #expect(try directoryContents(out) == before)
            #expect(!FileManager.default.fileExists(atPath: out + "/" + PanelStore.ownerFileName))

            // The store that wrote them is recognised (its delivered cursor matches the manifest) and claims it.
            try applyHistory(old, rows: 60)
            #expect(try old.deliver(to: out, segmentMaxBytes: 1500).recordsDelivered > 0)
            let owner = try Data(contentsOf: URL(fileURLWithPath: out + "/" + PanelStore.ownerFileName))
            #expect(String(decoding: owner, as: UTF8.self).contains(old.storeID))
        }
    }

    @Test func theStoreIDIsKeptAcrossReopens() throws {
        try withTemporaryDirectory { dir in
            let id = try PanelStore(directory: dir).storeID
            #expect(id.count == 36)
            #expect(try PanelStore(directory: dir).storeID == id)
            #expect(try PanelStore(directory: dir, access: .reader).storeID == id)
        }
    }
}

/// Several pipelines share a store (an events pipeline and the participants pipeline it resolves users through):
/// the outbox is one stream, but each entry goes to the directory of the pipeline that wrote it, whichever
/// pipeline's run delivers it.
@Suite struct DeliveryRoutingTests {
    /// Three rounds of `people` (4 rows) then `other` (3 rows): sequences 1-4, 5-7, 8-11, 12-14, 15-18, 19-21.
    func applyTwoPipelines(_ store: PanelStore, people: String, other: String) throws {
        try store.setDeliveryDirectory(people, pipeline: "people")
        try store.setDeliveryDirectory(other, pipeline: "other")
        for round in 0..<3 {
            _ = try store.apply((0..<4).map { i in
                PanelStore.Change(externalID: "p\(round)-\(i)", commitVersion: Int64(round + 1), record: record("p", i))
            }, scope: "people", pipeline: "people", checkpoint: .init(tableVersion: Int64(round + 1)))
            _ = try store.apply((0..<3).map { i in
                PanelStore.Change(externalID: "o\(round)-\(i)", commitVersion: Int64(round + 1), record: record("o", i))
            }, scope: "other", pipeline: "other", checkpoint: .init(tableVersion: Int64(round + 1)))
        }
    }

    func manifestFiles(_ directory: String) throws -> [String] {
        let m = try jsonObject(String(decoding: Data(contentsOf: URL(fileURLWithPath: directory + "/manifest.json")), as: UTF8.self))
        return (m["segments"] as? [[String: Any]] ?? []).compactMap { $0["file"] as? String }
    }

    @Test func eachEntryGoesToItsPipelinesDirectoryWhoeverDelivers() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db")
            let (people, other) = (dir + "/out-people", dir + "/out-other")
            try applyTwoPipelines(store, people: people, other: other)
            // A run of `people` delivers everything pending, `other`'s changes included.
            let outcome = try store.deliver(to: people)
            #expect(outcome.recordsDelivered == 21)
            func names(_ ranges: [(UInt64, UInt64)]) -> [String] {
                ranges.map { PanelStore.segmentFileName(first: $0.0, last: $0.1) }
            }
            let otherNames = names([(5, 7), (12, 14), (19, 21)])
            let elsewhere = otherNames.map { other + "/" + $0 }
            #expect(outcome.elsewhere == elsewhere)
            #expect(try segmentFiles(people) == names([(1, 4), (8, 11), (15, 18)]))
            #expect(try segmentFiles(other) == otherNames)
            for (directory, scope) in [(people, "people"), (other, "other")] {
                let lines = try deliveredLines(directory, try segmentFiles(directory)).map { try jsonObject($0) }
                let expectedCount = scope == "people" ? 12 : 9
                #expect(lines.count == expectedCount)
                #expect(lines.allSatisfy { $0["scope"] as? String == scope }, "only \(scope)'s lines in \(directory)")
                #expect(try manifestFiles(directory) == (try segmentFiles(directory)), "each manifest lists its own segments")
            }
            #expect(try store.deliveredSegments().map(\.directory) == [people, other, people, other, people, other])
            #expect(try store.pendingOutboxCount() == 0)
            #expect(try store.deliveredSequence() == 21)
        }
    }

    /// The crash test of `DeliveryTests`, with segments going to two directories: crash at every step, rerun,
    /// and both directories are byte-identical to an uninterrupted delivery.
    @Test func crashAtAnyStepThenRerunGivesIdenticalOutputInEveryDirectory() throws {
        try withTemporaryDirectory { dir in
            let reference = try PanelStore(directory: dir + "/ref-db")
            try applyTwoPipelines(reference, people: dir + "/ref-people", other: dir + "/ref-other")
            var steps: [PanelStore.DeliveryStep] = []
            reference.deliveryHook = { steps.append($0) }
            _ = try reference.deliver(to: dir + "/ref-people")
            let expected = [try directoryContents(dir + "/ref-people"), try directoryContents(dir + "/ref-other")]
            // Each rename(2) is a step before and after it: two owner files, six segments, two manifests.
            let renames = steps.filter { if case .beforeRename = $0 { true } else { false } }.count
            #expect(renames == 2 + 6 + 2)
            #expect(steps.count - 2 * renames == 6 * 3 + 1)

            for crashAt in steps.indices {
                let store = try PanelStore(directory: dir + "/db-\(crashAt)")
                let (people, other) = (dir + "/people-\(crashAt)", dir + "/other-\(crashAt)")
                try applyTwoPipelines(store, people: people, other: other)
                var seen = 0
                store.deliveryHook = { _ in
                    if seen == crashAt { throw InjectedCrash() }
                    seen += 1
                }
                #expect(throws: InjectedCrash.self) { try store.deliver(to: people) }
                store.deliveryHook = nil
                // The rerun comes from the other pipeline's run this time.
                _ = try store.deliver(to: other)
                let actual = [try directoryContents(people), try directoryContents(other)]
                #expect(actual == expected, "crash at step \(crashAt): \(steps[crashAt])")
                #expect(try store.pendingOutboxCount() == 0)
            }
        }
    }
}
