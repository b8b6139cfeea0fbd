package ai.sameedge;

/**
 * An encoder stream ({@link Model#encoderStream(int)}): interleaved audio {@code [frames][channels]} in, latents
 * {@code [frames][latentDim]} out, one latent frame per {@link Model#hop()} audio frames once a chunk is complete;
 * the flush pads the last audio to a whole chunk (ceil(T / hop) latent frames in all). See {@link CodecStream}.
 */
public final class EncoderStream extends CodecStream {
    EncoderStream(long handle, int latencySamples, Model.LogRef logRef) {
        super(handle, latencySamples, logRef);
    }
}
