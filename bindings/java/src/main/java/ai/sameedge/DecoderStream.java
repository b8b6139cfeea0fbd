package ai.sameedge;

/**
 * A decoder stream ({@link Model#decoderStream(int)}): latents {@code [frames][latentDim]} in, interleaved audio
 * {@code [frames][channels]} out ({@link Model#hop()} audio frames per latent frame, L * hop in all after the
 * flush). See {@link CodecStream}.
 */
public final class DecoderStream extends CodecStream {
    DecoderStream(long handle, int latencySamples, Model.LogRef logRef) {
        super(handle, latencySamples, logRef);
    }
}
