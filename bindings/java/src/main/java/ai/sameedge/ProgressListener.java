package ai.sameedge;

/**
 * Called on the calling thread after each graph call of an offline {@link Model#encode}/{@link Model#decode}:
 * input frames consumed so far, of {@code total}. An exception it throws stops the call (the library sees a
 * cancel) and propagates out of it, instead of a {@link SameEdgeException}.
 */
@FunctionalInterface
public interface ProgressListener {
    /** {@code done} of {@code total} input frames (audio frames to encode, latent frames to decode) are consumed. */
    void onProgress(long done, long total);
}
