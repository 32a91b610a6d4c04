import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation
import Testing

/// A run record says `running` until the run ends, and a record left `running` by a process that is gone becomes
/// `interrupted` — never `succeeded` with counts of nothing, as a run killed before its end used to be recorded.
@Suite("Run status")
struct RunStatusTests {
    func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test func aRecordIsRunningUntilTheRunEnds() throws {
        var s = SyncSummary(pipeline: "p", table: "main.s.t")
        #expect(try object(s.json())["status"] as? String == "running")
        #expect(try object(s.json())["pid"] as? Int == Int(getpid()))
        s.status = .succeeded
        #expect(try object(s.json())["status"] as? String == "succeeded")
        s.status = .failed
        #expect(try object(s.json())["status"] as? String == "failed")
    }

    @Test func aRunningRecordIsMarkedInterruptedKeepingEveryOtherField() throws {
        var s = SyncSummary(pipeline: "p \"quoted\"", table: "main.s.t")
        s.processID = 4242
        s.inserted = 7
        s.processToken = "t"
        s.warnings = ["w"]
        var rewritten = try RunRecord(json: s.json())
        rewritten.markInterrupted()
        let o = try object(rewritten.json())
        #expect(o["status"] as? String == "interrupted")
        #expect((o["error"] as? String)?.contains("process 4242 ended before the run finished") == true)
        #expect(o["pipeline"] as? String == "p \"quoted\"")
        #expect((o["counts"] as? [String: Any])?["inserted"] as? Int == 7)
        var expected = s
        expected.status = .interrupted
        expected.error = rewritten.error
        #expect(rewritten == expected, "only the status and the error change")
        s.status = .succeeded
        var finished = s
        finished.markInterrupted()
        #expect(finished == s, "a finished record is left alone")
    }

    @Test func aRunningRecordReadsRunningOnlyWhileItsProcessHoldsTheStore() throws {
        var s = SyncSummary(pipeline: "p", table: "main.s.t")
        s.processID = 1
        s.processToken = "token-a"
        let o = try RunRecord(json: s.json())
        func holder(_ pid: Int32, _ token: String?) -> WriterLock.Holder { .init(pid: pid, process: token) }
        #expect(o.effectiveStatus(holder: holder(1, "token-a")) == .running)
        #expect(o.effectiveStatus(holder: holder(1, "token-b")) == .interrupted,
            "another process with the same pid (pid 1 in every container) holds the store now")
        #expect(o.effectiveStatus(holder: holder(5000, "token-c")) == .interrupted)
        #expect(o.effectiveStatus(holder: nil) == .interrupted, "nobody holds it")
        #expect(o.current(holder: nil).status == .interrupted)
        #expect(o.current(holder: holder(1, "token-a")) == o)
        // A record written before tokens were recorded: the pid decides.
        var legacy = o
        legacy.processToken = nil
        #expect(legacy.effectiveStatus(holder: holder(1, nil)) == .running)
        #expect(legacy.effectiveStatus(holder: holder(2, nil)) == .interrupted)
    }
}
