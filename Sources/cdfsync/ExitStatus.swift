import ArgumentParser
import Foundation

/// The exit statuses of every cdfsync command (docs/cli.md, "Exit status").
///
/// | status | meaning |
/// |---|---|
/// | 0 | done: the run succeeded, the check passed, the report was printed |
/// | 1 | failed: a run failed (its record says why), a check found a problem, an error was printed |
/// | 64 | usage: an unknown option, a missing or malformed value (`EX_USAGE`, as swift-argument-parser exits) |
/// | 130 | interrupted by SIGINT (Ctrl-C): the running statement was cancelled, nothing past the last checkpoint applied |
/// | 143 | stopped by SIGTERM, the same way |
///
/// A second SIGINT or SIGTERM ends the process at once, killed by the signal (a shell shows 130 or 143 too).
enum ExitStatus {
    static let ok: Int32 = 0
    static let failed: Int32 = 1
    static let usage: Int32 = 64
    static let interruptedByInterrupt: Int32 = 128 + SIGINT
    static let interruptedByTerminate: Int32 = 128 + SIGTERM

    /// 128 + the signal's number.
    static func interrupted(by signal: Int32) -> Int32 { 128 + signal }

    /// What a command that failed exits with: the interrupt's status when a signal stopped it, else 1.
    static var failure: ExitCode { ExitCode(Interrupts.exitStatus ?? failed) }
}
