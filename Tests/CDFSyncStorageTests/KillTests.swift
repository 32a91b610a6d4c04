import CDFSyncTestSupport
import Foundation
import Testing

@testable import CDFSyncStorage

/// Kills a real process that is applying batches (SIGKILL at an arbitrary point after it has committed a few) and
/// checks that the reopened store holds exactly the batches up to its checkpoint: nothing half-applied, nothing
/// lost, outbox contiguous.
///
/// The process is `cdfsync-test-child apply-until-killed` (Tests/cdfsync-test-child): it applies these batches,
/// printing "applied <b>" after each commit, until it is killed.
@Suite struct KillTests {
    static let batchSize = TestChild.applyLoopBatchSize

    /// Batch `b`: 300 new keys, plus a changed update of the first 100 keys of batch `b - 1`.
    static func batch(_ b: Int) -> [PanelStore.Change] { TestChild.applyLoopBatch(b) }

    @Test func killedApplyLeavesOnlyWholeBatches() throws {
        try withTemporaryDirectory { dir in
            let child = try TestChild.process(.applyUntilKilled, directory: dir)
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
