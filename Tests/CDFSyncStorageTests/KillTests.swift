import Foundation
import Testing

@testable import CDFSyncStorage

/// Kills a real process that is applying batches (SIGKILL at an arbitrary point after it has committed a few) and
/// checks that the reopened store holds exactly the batches up to its checkpoint: nothing half-applied, nothing
/// lost, outbox contiguous.
@Suite struct KillTests {
    static let childDirectoryVariable = "CDFSYNC_STORAGE_KILL_CHILD_DIR"
    static let batchSize = 300

    /// Batch `b`: 300 new keys, plus a changed update of the first 100 keys of batch `b - 1`.
    static func batch(_ b: Int) -> [PanelStore.Change] {
        var rows = (0..<batchSize).map { i in
            PanelStore.Change(externalID: "b\(b)-\(i)", commitVersion: Int64(b), record: record("b\(b)", i))
        }
        if b > 0 {
            rows += (0..<100).map { i in
                PanelStore.Change(externalID: "b\(b - 1)-\(i)", commitVersion: Int64(b), record: record("upd\(b)", i))
            }
        }
        return rows
    }

    /// The child: applies batches until killed, printing "applied <b>" after each commit.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[childDirectoryVariable] != nil))
    func childApplyLoop() throws {
        let dir = ProcessInfo.processInfo.environment[Self.childDirectoryVariable]!
        let store = try PanelStore(directory: dir)
        for b in 0..<100_000 {
            _ = try store.apply(Self.batch(b), scope: "s", pipeline: "p", checkpoint: .init(tableVersion: Int64(b)))
            FileHandle.standardOutput.write(Data("applied \(b)\n".utf8))
        }
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment[childDirectoryVariable] == nil))
    func killedApplyLeavesOnlyWholeBatches() throws {
        try withTemporaryDirectory { dir in
            let child = childTestProcess(filter: "childApplyLoop", variable: Self.childDirectoryVariable, value: dir)
            let pipe = Pipe()
            child.standardOutput = pipe
            try child.run()
            // Wait (by reading the child's output, not by timing) until it has committed batch 5, then kill it
            // wherever it is.
            var seen = ""
            var reported = -1
            while reported < 5 {
                let data = pipe.fileHandleForReading.availableData
                if data.isEmpty { break }  // the child ended on its own: that is a failure below
                seen += String(decoding: data, as: UTF8.self)
                for line in seen.split(separator: "\n") where line.hasPrefix("applied ") {
                    reported = max(reported, Int(line.dropFirst(8)) ?? -1)
                }
            }
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            #expect(child.terminationReason == .uncaughtSignal)
            #expect(reported >= 5)

            let store = try PanelStore(directory: dir)
            let checkpoint = try #require(try store.checkpoint(pipeline: "p")).tableVersion
            #expect(checkpoint >= Int64(reported))  // every reported commit survived
            let last = Int(checkpoint)
            print("kill test: child reported \(reported), checkpoint after kill \(checkpoint)")
            // Exactly batches 0...last: every key present with its final content, nothing from batch last+1.
            #expect(try store.count() == (last + 1) * Self.batchSize)
            #expect(try store.record(externalID: "b\(last + 1)-0", scope: "s") == nil)
            for b in 0...last {
                for i in [0, 99, 100, Self.batchSize - 1] {
                    let r = try #require(try store.record(externalID: "b\(b)-\(i)", scope: "s"))
                    let updated = i < 100 && b < last
                    #expect(r.record == (updated ? record("upd\(b + 1)", i) : record("b\(b)", i)))
                    #expect(r.commitVersion == Int64(updated ? b + 1 : b))
                }
            }
            // The outbox holds one line per insert and changed update, contiguous from 1.
            let expectedLines = (last + 1) * Self.batchSize + last * 100
            #expect(try store.pendingOutboxCount() == expectedLines)
            let outcome = try store.deliver(to: dir + "-out")
            defer { try? FileManager.default.removeItem(atPath: dir + "-out") }
            #expect(outcome.recordsDelivered == expectedLines)
            let seqs = try deliveredLines(dir + "-out", outcome.files).map { try jsonObject($0)["seq"] as? Int }
            #expect(seqs == (1...expectedLines).map { $0 })
            // And the store keeps working where the child stopped.
            let next = try store.apply(Self.batch(last + 1), scope: "s", pipeline: "p", checkpoint: .init(tableVersion: Int64(last + 1)))
            #expect(next == .init(inserted: Self.batchSize, updated: 100))
        }
    }
}
