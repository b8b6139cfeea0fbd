package ai.sameedge;

/**
 * Receives the C library's messages at or above {@link ModelOptions#logLevel}, one line each without a
 * newline, on the thread of the call that logs, during that call (an open, a push, a flush...). It must be
 * quick and must not call back into the model or stream that logs. Whatever it throws is dropped; a message
 * logged while an exception is already on its way out of a call (one a {@link ProgressListener} threw) is
 * dropped too.
 */
@FunctionalInterface
public interface LogListener {
    /** One message of the library at {@code level}. */
    void onLog(LogLevel level, String message);
}
