package ai.sameedge;

import java.util.function.BooleanSupplier;

/**
 * Options of one offline {@link Model#encode}/{@link Model#decode} call ({@code se_run_options}). The setters
 * return {@code this}. Another thread cancels a call by setting a flag the abort condition reads:
 *
 * <pre>{@code
 * AtomicBoolean stop = new AtomicBoolean();
 * RunOptions run = new RunOptions().abortWhen(stop::get).progress((done, total) -> bar.set(done, total));
 * float[] latents = model.encode(audio, run);  // SameEdgeException(CANCELLED) once stop.set(true) is seen
 * }</pre>
 */
public final class RunOptions {
    private int largestWindow;
    private BooleanSupplier abortWhen;
    private ProgressListener progress;

    /** The largest window (in chunks: 2 frames for SAME-S, 1 for SAME-L) a graph call may use; 0 (default): every window of the model. */
    public RunOptions largestWindow(int largestWindow) {
        this.largestWindow = largestWindow;
        return this;
    }

    /**
     * Asked on the calling thread before each graph call; true stops the call with {@link Status#CANCELLED}.
     * An exception it throws stops the call too and propagates out of it.
     */
    public RunOptions abortWhen(BooleanSupplier abortWhen) {
        this.abortWhen = abortWhen;
        return this;
    }

    /** Told after each graph call how many input frames are consumed (see {@link ProgressListener}). */
    public RunOptions progress(ProgressListener progress) {
        this.progress = progress;
        return this;
    }

    int largestWindow() {
        return largestWindow;
    }

    BooleanSupplier abortWhen() {
        return abortWhen;
    }

    ProgressListener progress() {
        return progress;
    }
}
