package ai.sameedge;

/** The C library's {@code se_log_level}: for {@link ModelOptions#logLevel} and {@link ModelOptions#litertLogLevel}. */
public enum LogLevel {
    /** The default: warnings for this library, silent for LiteRT. */
    DEFAULT,
    /** Everything, for debugging. */
    DEBUG,
    /** What each open read and compiled. */
    INFO,
    /** Warnings and errors. */
    WARNING,
    /** Errors only (each failed call's message). */
    ERROR,
    /** Nothing. */
    SILENT;

    /** The C value ({@code SE_LOG_DEFAULT} is 0, {@code SE_LOG_SILENT} 5). */
    int code() {
        return ordinal();
    }
}
