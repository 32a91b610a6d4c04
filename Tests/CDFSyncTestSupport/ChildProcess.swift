import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a child process ended and what it printed.
public struct ProcessResult: Sendable {
    /// The exit status, or the signal number when a signal ended it.
    public var status: Int32
    /// Whether it exited (rather than being ended by a signal).
    public var exited: Bool
    /// Whether the runner killed it (SIGKILL) because it was still running at its deadline.
    public var killedAtDeadline: Bool
    /// Its standard output; everything it printed when the output was merged.
    public var stdout: String
    /// Its standard error; empty when the output was merged.
    public var stderr: String

    /// Everything it printed (standard output, then standard error when they were kept apart).
    public var output: String { stdout + stderr }
    /// Whether a signal ended it.
    public var signaled: Bool { !exited }
    /// Whether it exited with status 0.
    public var succeeded: Bool { exited && status == 0 }
}

/// Runs other programs (the built `cdfsync`, the test child, `/bin/sh`) to their end, or to a deadline.
public enum ChildProcess {
    /// Runs `executable` with `arguments` and waits for it.
    ///
    /// - Parameters:
    ///   - environment: its whole environment (nil: this process's).
    ///   - directory: its working directory (nil: this process's).
    ///   - stdin: written to its standard input, which is then closed (nil: an empty standard input).
    ///   - mergeOutput: standard error into the same pipe as standard output, interleaved as written.
    ///   - discardOutput: its output goes nowhere (for runs that print a lot nobody reads).
    ///   - deadline: seconds after which it is killed with SIGKILL if still running (nil: wait for it).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
        stdin: String? = nil, mergeOutput: Bool = true, discardOutput: Bool = false, deadline: Double? = nil
    ) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        let err = mergeOutput ? out : Pipe()
        if discardOutput {
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
        } else {
            p.standardOutput = out
            p.standardError = err
        }
        let input: Pipe? = stdin == nil ? nil : Pipe()
        p.standardInput = input ?? FileHandle.nullDevice
        try p.run()
        if let input, let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
        // Both pipes are drained while the child runs (a child filling one pipe would otherwise block forever).
        let collected = Collected()
        let readers = DispatchGroup()
        if !discardOutput {
            DispatchQueue.global().async(group: readers) {
                let data = out.fileHandleForReading.readDataToEndOfFile()
                collected.out.withLock { $0 = data }
            }
            if !mergeOutput {
                DispatchQueue.global().async(group: readers) {
                    let data = err.fileHandleForReading.readDataToEndOfFile()
                    collected.err.withLock { $0 = data }
                }
            }
        }
        var killed = false
        if let deadline {
            let end = Date().addingTimeInterval(deadline)
            while p.isRunning && Date() < end { usleep(10_000) }
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                killed = true
            }
        }
        p.waitUntilExit()
        readers.wait()
        return ProcessResult(
            status: p.terminationStatus, exited: p.terminationReason == .exit, killedAtDeadline: killed,
            stdout: collected.out.withLock { String(decoding: $0, as: UTF8.self) },
            stderr: collected.err.withLock { String(decoding: $0, as: UTF8.self) })
    }

    /// What the reader threads collected.
    private final class Collected: Sendable {
        let out = Mutex(Data())
        let err = Mutex(Data())
    }
}
