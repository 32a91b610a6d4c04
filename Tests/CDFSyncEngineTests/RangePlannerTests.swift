@testable import CDFSyncCore
import CDFSyncClient
import CDFSyncEngine
import Testing

@Suite("Range planner")
struct RangePlannerTests {
    func entry(_ v: Int64, _ metrics: [String: Int64]) -> HistoryEntry {
        HistoryEntry(version: v, operation: "WRITE", timestamp: nil, metrics: metrics)
    }

    @Test func estimatesChangeRowsPerOperation() {
        #expect(entry(1, ["numOutputRows": 10]).estimatedChangeRows == 10)
        #expect(entry(2, ["numTargetRowsInserted": 3, "numTargetRowsUpdated": 4, "numTargetRowsDeleted": 1]).estimatedChangeRows == 12)
        #expect(entry(3, ["numUpdatedRows": 5]).estimatedChangeRows == 10)
        #expect(entry(4, [:]).estimatedChangeRows == nil)
    }

    @Test func splitsByVersionsAndByRowsAndCoversTheRangeExactly() {
        var p = RangePlanner()
        p.maxVersionsPerStatement = 3
        p.maxRowsPerStatement = 100
        p.externalLinksThreshold = 50
        let history = (0...9).map { entry(Int64($0), ["numOutputRows": $0 == 5 ? 90 : 10]) }
        let ranges = p.plan(start: 2, end: 9, history: history)
        // Contiguous, in order, covering 2...9 with no gaps or overlaps.
        #expect(ranges.first?.start == 2 && ranges.last?.end == 9)
        for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(b.start == a.end + 1) }
        for r in ranges {
            #expect(r.end - r.start + 1 <= 3)
            if let rows = r.estimatedRows, r.end > r.start { #expect(rows <= 100) }
        }
        #expect(ranges.contains { $0.disposition == .externalLinks }, "the 90-row version pushes a range over 50")
        #expect(ranges.contains { $0.disposition == .inline })
    }

    @Test func unknownSizeReadsThroughExternalLinks() {
        let ranges = RangePlanner().plan(start: 0, end: 4, history: [])
        #expect(ranges == [PlannedRange(start: 0, end: 4, estimatedRows: nil, disposition: .externalLinks)])
    }
}
