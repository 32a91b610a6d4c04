import CDFSyncClient
@testable import CDFSyncEngine
@testable import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Synchronization
import Testing

/// Buffers handed back for reuse (applied batches, downloaded chunk bodies) must come back empty: a reused
/// buffer that kept a byte of what it held before would put another row's data into the panel.
@Suite("Buffer reuse")
struct BufferReuseTests {
    @Test func anAppliedBatchComesBackEmptyWithItsBuffersAndTakesNewRows() throws {
        let seen = Mutex<[[String]]>([])
        let writer = BatchWriter(capacity: 1) { batch, _ in
            seen.withLock { $0.append((0..<batch.count).map { batch.externalID($0) }) }
            return PanelStore.ApplyOutcome()
        }
        var first = PanelStore.ChangeBatch()
        for i in 0..<200 {
            let record = Array(#"{"id":"p\#(i)","email":"p\#(i)@example.com"}"#.utf8)
            record.withUnsafeBytes {
                first.append(externalID: "p\(i)", commitVersion: 1, record: $0, email: "p\(i)@example.com", phone: "+4420\(i)")
            }
        }
        let firstBytes = first.byteCount
        try writer.submit(first, checkpoint: nil)

        var spare: PanelStore.ChangeBatch?
        let deadline = Date().addingTimeInterval(30)
        while spare == nil && Date() < deadline {
            spare = writer.takeSpare()
            if spare == nil { usleep(1_000) }
        }
        var second = try #require(spare, "the writer handed no applied batch back")
        #expect(second.count == 0)
        #expect(second.byteCount == 0)
        #expect(second.reservedBytes >= firstBytes, "the spare kept no buffers: reuse would allocate afresh")

        for id in ["q1", "q2"] {
            let record = Array(#"{"id":"\#(id)"}"#.utf8)
            record.withUnsafeBytes { second.append(externalID: id, commitVersion: 2, record: $0) }
        }
        #expect(second.email(0) == nil && second.email(1) == nil, "a reused batch carried the last batch's emails")
        #expect(second.byteCount == 4 + 2 * #"{"id":"q1"}"#.utf8.count)
        try writer.submit(second, checkpoint: nil)
        _ = try writer.finish()
        #expect(seen.withLock { $0 } == [(0..<200).map { "p\($0)" }, ["q1", "q2"]])
    }

    @Test func aBodyCollectedIntoAUsedBufferIsExactlyTheResponse() throws {
        let sim = try RunningSimulator()
        let transport = CurlTransport()
        let request = HTTPRequest(method: .get, url: sim.baseURL + "/api/2.0/sql/warehouses",
            headers: [("Authorization", "Bearer dapi-demo-token")])
        let (_, fresh) = try transport.performCollecting(request)
        #expect(fresh.count > 100)

        var buffer = [UInt8](repeating: UInt8(ascii: "x"), count: 64 << 10)
        let capacity = buffer.capacity
        let head = try transport.performCollecting(request, into: &buffer)
        #expect(head.status == 200)
        // (Compared as a Bool: a failure message printing both bodies byte by byte takes minutes.)
        let same = buffer == fresh
        #expect(same, "stale bytes of the buffer's last use were left in the body (\(buffer.count) bytes, \(fresh.count) sent)")
        #expect(buffer.capacity >= capacity, "the buffer's room was not kept")
    }

    /// Reused buffers only save the first touch of fresh memory if the next use fits: a batch sized from the last
    /// one, or a body buffer sized for the last chunk, must take a slightly larger next one without growing.
    @Test func aBatchSizedLikeTheLastTakesASlightlyLargerOneWithoutGrowing() {
        func records(_ n: Int, padding: Int) -> [[UInt8]] {
            (0..<n).map { Array(#"{"id":"p\#($0)","note":"\#(String(repeating: "x", count: padding))"}"#.utf8) }
        }
        var first = PanelStore.ChangeBatch()
        for (i, r) in records(1_000, padding: 200).enumerated() {
            r.withUnsafeBytes { first.append(externalID: "p\(i)", commitVersion: 1, record: $0) }
        }
        var next = PanelStore.ChangeBatch(reservingRows: 1_000, like: first)
        let reserved = next.reservedBytes
        // 5 % more record bytes than the batch it was sized from.
        for (i, r) in records(1_000, padding: 215).enumerated() {
            r.withUnsafeBytes { next.append(externalID: "p\(i)", commitVersion: 1, record: $0) }
        }
        #expect(next.byteCount > first.byteCount)
        #expect(next.reservedBytes == reserved, "the batch grew: its buffers moved to fresh memory")
    }

    @Test func aBodyBufferSizedForOneChunkTakesASlightlyLargerOneWithoutGrowing() throws {
        let sim = try RunningSimulator()
        let transport = CurlTransport()
        let request = HTTPRequest(method: .get, url: sim.baseURL + "/api/2.0/sql/warehouses",
            headers: [("Authorization", "Bearer dapi-demo-token")])
        var buffer: [UInt8] = []
        let (_, body) = try transport.performCollecting(request)
        // A first chunk of exactly its announced size, then one announced 5 % longer (the response is the same;
        // only the room the buffer is given is under test).
        _ = try transport.performCollecting(request, into: &buffer, expectedBytes: body.count)
        let capacity = buffer.capacity
        _ = try transport.performCollecting(request, into: &buffer, expectedBytes: body.count * 21 / 20)
        #expect(buffer.capacity == capacity, "the buffer was replaced for a chunk a few bytes longer")
        let same = buffer == body
        #expect(same)
    }
}
