@testable import CDFSyncEngine
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The reading side of a sync runs on a thread of its own, scheduled below the writer (`ReadingThread`): what the
/// body returns or throws must come back to the caller, and the lower priority must be the reading thread's alone.
@Suite("Reading thread")
struct ReadingThreadTests {
    static func niceness() -> Int32 { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }

    @Test func theBodyRunsOnAnotherThreadAtLowerPriorityAndTheCallerKeepsItsOwn() throws {
        let caller = Self.niceness()
        let callerThread = pthread_self()
        let (niceness, sameThread) = try ReadingThread.run(niceness: 5) {
            (Self.niceness(), pthread_equal(pthread_self(), callerThread) != 0)
        }
        #expect(!sameThread)
        #expect(niceness == min(19, caller + 5))
        #expect(Self.niceness() == caller, "the caller's own priority changed")
    }

    @Test func zeroRunsOnTheCallingThread() throws {
        let callerThread = pthread_self()
        let sameThread = try ReadingThread.run(niceness: 0) { pthread_equal(pthread_self(), callerThread) != 0 }
        #expect(sameThread)
    }

    @Test func anErrorThrownOnTheReadingThreadReachesTheCaller() {
        struct Refused: Error, Equatable { let chunk: Int }
        #expect(throws: Refused(chunk: 7)) {
            try ReadingThread.run(niceness: 3) { () throws -> Int in throw Refused(chunk: 7) }
        }
        // And state the body captured is the caller's (it does not escape the call: the run waits for it).
        var rows: [Int] = []
        try? ReadingThread.run(niceness: 3) { rows = Array(0..<1_000) }
        #expect(rows.count == 1_000)
    }
}
