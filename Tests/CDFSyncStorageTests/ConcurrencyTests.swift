import Dispatch
import Foundation
import Testing

@testable import CDFSyncStorage

@Suite struct ConcurrencyTests {
    @Test func concurrentAppliesFromSeveralThreadsGetUniqueContiguousIDs() throws {
        try withTemporaryDirectory { dir in
            let store = try PanelStore(directory: dir, durable: false)
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 4) { worker in
                do {
                    for batch in 0..<10 {
                        let changes = (0..<200).map { i in
                            PanelStore.Change(
                                externalID: "w\(worker)-b\(batch)-\(i)", commitVersion: Int64(batch), record: record("x", i))
                        }
                        let outcome = try store.apply(changes, scope: "scope-\(worker % 2)", pipeline: "p\(worker)",
                            checkpoint: .init(tableVersion: Int64(batch)))
                        if outcome.inserted != 200 { failures.append("inserted \(outcome.inserted)") }
                    }
                } catch {
                    failures.append("\(error)")
                }
            }
            #expect(failures.all == [])
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
            let failures = Failures()
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
                    failures.append("\(error)")
                }
            }
            #expect(failures.all == [])
            _ = try store.deliver(to: out, segmentMaxBytes: 4096)
            #expect(try store.pendingOutboxCount() == 0)
            let lastSeq = try store.deliveredSequence()
            let seqs = try deliveredLines(out, try segmentFiles(out)).map { try jsonObject($0)["seq"] as? Int }
            #expect(seqs == (1...Int(lastSeq)).map { $0 })
            #expect(lastSeq == 30 * 100)  // every row is an insert or a changed update
        }
    }
}

/// Messages collected from worker threads (NSLock: visible to ThreadSanitizer).
final class Failures: @unchecked Sendable {
    // @unchecked Sendable: `messages` is only touched while `lock` is held.
    private let lock = NSLock()
    private var messages: [String] = []
    func append(_ message: String) {
        lock.lock()
        messages.append(message)
        lock.unlock()
    }
    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return messages
    }
}
