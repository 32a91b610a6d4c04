import Dispatch
import Foundation
import Synchronization
import Testing

@testable import CDFSyncStorage

@Suite struct ConcurrencyTests {
    @Test func concurrentAppliesFromSeveralThreadsGetUniqueContiguousIDs() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir, durable: false)
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { worker in
                do {
                    for batch in 0..<10 {
                        let changes = (0..<200).map { i in
                            PanelStore.Change(
                                externalID: "w\(worker)-b\(batch)-\(i)", commitVersion: Int64(batch), record: record("x", i))
                        }
                        let outcome = try store.apply(changes, scope: "scope-\(worker % 2)", pipeline: "p\(worker)",
                            checkpoint: .init(tableVersion: Int64(batch)))
                        if outcome.inserted != 200 { failures.withLock { $0.append("inserted \(outcome.inserted)") } }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
            var ids: [UInt64] = []
            try store.forEachRecord(scope: nil) { ids.append($0.participantID) }
            #expect(ids == Array(1...8000))
            #expect(try store.pendingOutboxCount() == 8000)
            for worker in 0..<4 { #expect(try store.checkpoint(pipeline: "p\(worker)")?.tableVersion == 9) }
        }
    }

    @Test func deliveringWhileApplyingDeliversEveryLineExactlyOnce() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir + "/db", durable: false)
            let out = dir + "/out"
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { role in
                do {
                    if role == 0 {
                        for batch in 0..<30 {
                            let changes = (0..<100).map { i in
                                // Half new keys, half updates of the previous batch's keys.
                                PanelStore.Change(
                                    externalID: "k\(batch * 50 + i)", commitVersion: Int64(batch), record: record("b\(batch)", i))
                            }
                            _ = try store.apply(changes, scope: "s", pipeline: "p", checkpoint: nil)
                        }
                    } else {
                        for _ in 0..<30 { _ = try store.deliver(to: out, segmentMaxBytes: 4096) }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
            _ = try store.deliver(to: out, segmentMaxBytes: 4096)
            #expect(try store.pendingOutboxCount() == 0)
            let lastSeq = try store.deliveredSequence()
            let seqs = try deliveredLines(out, try segmentFiles(out)).map { try jsonObject($0)["seq"] as? Int }
            #expect(seqs == (1...Int(lastSeq)).map { $0 })
            #expect(lastSeq == 30 * 100)  // every row is an insert or a changed update
        }
    }
}
