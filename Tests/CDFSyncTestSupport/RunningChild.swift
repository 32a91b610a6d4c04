import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process the test talks to while it runs: its output (standard output and error, merged) is collected as
/// it comes, the test waits for a text to appear, sends it a signal, and waits for its end.
public final class RunningChild: @unchecked Sendable {
    private let process: Process
    private let collected = Collected()
    private let drained = DispatchGroup()

    /// Starts `executable` with `arguments`; `environment` is its whole environment (nil: this process's).
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                directory: String? = nil) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        process = p
        try p.run()
        let reader = out.fileHandleForReading
        DispatchQueue.global().async(group: drained) { [collected] in
            while true {
                let data = reader.availableData
                if data.isEmpty { return }
                collected.data.withLock { $0.append(data) }
            }
        }
    }

    /// Everything it printed so far.
    public var output: String { collected.data.withLock { String(decoding: $0, as: UTF8.self) } }

    public var pid: Int32 { process.processIdentifier }

    /// Waits until its output contains `text`; false if it ended first, or `limit` seconds passed (a bound against
    /// hanging, not a measurement).
    public func waitForOutput(containing text: String, limit: Double = 120) -> Bool {
        let end = Date().addingTimeInterval(limit)
        while Date() < end {
            if output.contains(text) { return true }
            if !process.isRunning { return output.contains(text) }
            usleep(20_000)
        }
        return false
    }

    /// Sends `signal` to it.
    public func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for its end (killing it with SIGKILL after `limit` seconds) and returns how it ended.
    public func wait(limit: Double = 120) -> ProcessResult {
        let end = Date().addingTimeInterval(limit)
        while process.isRunning && Date() < end { usleep(10_000) }
        var killed = false
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            killed = true
        }
        process.waitUntilExit()
        drained.wait()
        return ProcessResult(status: process.terminationStatus, exited: process.terminationReason == .exit,
            killedAtDeadline: killed, stdout: output, stderr: "")
    }

    /// What the reader thread collected.
    private final class Collected: Sendable {
        let data = Mutex(Data())
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
