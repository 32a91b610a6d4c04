import ArgumentParser
import CDFSyncEngine
import Foundation
import Synchronization

/// `--progress` / `--no-progress` of the commands that run long (sync, replay, panel export).
struct ProgressOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: ArgumentHelp(
        "Show progress on stderr (default: a live line when stderr is a terminal, else one summary line at the end).",
        discussion: "--progress draws the live line even when stderr is not a terminal; --no-progress shows nothing. "
            + "--quiet and --log-format json imply --no-progress unless --progress is given."))
    var progress: Bool?

    /// How progress is shown: as asked; else nothing with --quiet or JSON log lines (a progress line would break
    /// them); else by whether stderr is a terminal.
    func mode(logging: LoggingOptions, console: Console = .standardError) -> ProgressRenderer.Mode {
        switch progress {
        case true?: .live
        case false?: .off
        case nil: logging.quiet || logging.logFormat == .json ? .off : console.isTerminal ? .live : .summary
        }
    }
}

/// The progress of a run on stderr: phase (preparing, reading, applying, delivering), rows read of the rows the
/// statements' manifests announced, rate, ETA — redrawn in place at most ``minimumInterval`` apart — and one
/// summary line at the end.
///
/// It is fed by the engine's ``RunProgressObserver`` calls (per chunk and per batch, from the reading and the writer
/// threads). The rate is the rows read since the first manifest, divided by the time since; the ETA is the
/// announced rows still unread at that rate. Later statements of a run announce their rows when they start, so the
/// total can grow as a run goes on.
final class ProgressRenderer: RunProgressObserver {
    enum Mode: Equatable {
        /// Redrawn in place (a terminal, or `--progress`), then left on the screen as the summary.
        case live
        /// One summary line at the end (stderr is a file or a pipe).
        case summary
        /// Nothing (`--no-progress`).
        case off
    }

    /// The fewest seconds between two redraws: a few per second at most.
    static let minimumInterval: Duration = .milliseconds(250)

    let mode: Mode
    /// What runs ("sync", "replay", "export"), the summary's first word.
    let label: String
    /// What is counted ("rows", "records").
    let unit: String
    /// What happens to them ("read", "written").
    let verb: String
    private let console: Console
    private let state: Mutex<State>

    struct State {
        var phase: RunPhase = .preparing
        var detail: String?
        var announced: Int64 = 0
        var read: Int64 = 0
        var applied: Int64 = 0
        let started: ContinuousClock.Instant
        /// When the first manifest (or the first rows) came: where the rate is measured from.
        var flowing: ContinuousClock.Instant?
        var drawn: ContinuousClock.Instant?
        /// Set by ``finish(failed:)``: a late call from another thread draws nothing after the summary.
        var finished = false
    }

    init(label: String, unit: String = "rows", verb: String = "read", mode: Mode, console: Console = .standardError) {
        self.label = label
        self.unit = unit
        self.verb = verb
        self.mode = mode
        self.console = console
        state = Mutex(State(started: .now))
    }

    // MARK: RunProgressObserver

    func phase(_ phase: RunPhase, detail: String?) {
        update(force: true) { s in
            s.phase = phase
            if let detail { s.detail = detail } else if phase == .preparing || phase == .delivering { s.detail = nil }
        }
    }

    func announced(rows: Int64) {
        update(force: true) { s in
            let (sum, overflow) = s.announced.addingReportingOverflow(max(0, rows))
            s.announced = overflow ? .max : sum
            if s.flowing == nil { s.flowing = .now }
        }
    }

    func read(rows: Int) {
        update { s in
            s.read += Int64(max(0, rows))
            if s.flowing == nil { s.flowing = .now }
        }
    }

    func applied(rows: Int) {
        update { s in s.applied += Int64(max(0, rows)) }
    }

    /// Ends the display: the live line is drawn a last time as the summary and kept; in summary mode the summary
    /// line is printed. `failed`: the run stopped with an error.
    func finish(failed: Bool = false) {
        guard mode != .off else { return }
        state.withLock { s in
            guard !s.finished else { return }
            s.finished = true
            let text = Self.summary(s, label: label, unit: unit, verb: verb, failed: failed, now: .now)
            if mode == .live { console.finishStatus(text) } else { console.line(text) }
        }
    }

    /// Runs `body` with this renderer finishing after it (as failed when it throws).
    func around<T>(_ body: () throws -> T) rethrows -> T {
        do {
            let result = try body()
            finish()
            return result
        } catch {
            finish(failed: true)
            throw error
        }
    }

    // MARK: Drawing

    private func update(force: Bool = false, _ change: (inout State) -> Void) {
        guard mode != .off else { return }
        // Drawn under the lock: a line computed by one thread is never drawn after a newer one, or the summary.
        state.withLock { s in
            guard !s.finished else { return }
            change(&s)
            guard mode == .live else { return }
            let now = ContinuousClock.now
            if !force, let drawn = s.drawn, now - drawn < Self.minimumInterval { return }
            s.drawn = now
            console.setStatus(Self.line(s, unit: unit, now: now))
        }
    }

    /// The live line: `reading v0…v3  42,000/100,000 rows (42%)  12,000 rows/s  ETA 0:05  applied 40,000`.
    static func line(_ s: State, unit: String, now: ContinuousClock.Instant) -> String {
        var parts = [s.phase.rawValue + (s.detail.map { " \($0)" } ?? "")]
        var count = format(s.read)
        if s.announced > 0 {
            count += "/\(format(s.announced)) \(unit)"
            let percent = min(100, s.read.multipliedReportingOverflow(by: 100).partialValue / max(1, s.announced))
            count += " (\(percent)%)"
        } else {
            count += " \(unit)"
        }
        parts.append(count)
        if let rate = rate(s, now: now) {
            parts.append("\(format(Int64(rate.rounded()))) \(unit)/s")
            if s.announced > s.read, s.phase == .reading {
                parts.append("ETA " + duration(Double(s.announced - s.read) / rate))
            }
        }
        if s.applied > 0 { parts.append("applied \(format(s.applied))") }
        return parts.joined(separator: "  ")
    }

    /// The summary: `sync: 100,000 rows read, 100,000 applied in 8.2 s (12,195 rows/s)`.
    static func summary(
        _ s: State, label: String, unit: String, verb: String = "read", failed: Bool, now: ContinuousClock.Instant
    ) -> String {
        let elapsed = seconds(now - s.started)
        var text = "\(label)\(failed ? " stopped" : ""): \(format(s.read)) \(unit) \(verb)"
        if s.phase != .exporting { text += ", \(format(s.applied)) applied" }
        text += " in " + String(format: "%.1f", elapsed) + " s"
        if let rate = rate(s, now: now) { text += " (\(format(Int64(rate.rounded()))) \(unit)/s)" }
        if failed { text += " during \(s.phase.rawValue)" + (s.detail.map { " \($0)" } ?? "") }
        return text
    }

    /// Rows per second since the rows started flowing; nil before a rate means anything.
    static func rate(_ s: State, now: ContinuousClock.Instant) -> Double? {
        guard let flowing = s.flowing, s.read > 0 else { return nil }
        let elapsed = seconds(now - flowing)
        return elapsed > 0.05 ? Double(s.read) / elapsed : nil
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// `m:ss`, or `h:mm:ss` from an hour on.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(min(seconds, 359_999).rounded(.up))
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
        return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
    }

    /// Thousands separated by commas.
    static func format(_ n: Int64) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }
}
