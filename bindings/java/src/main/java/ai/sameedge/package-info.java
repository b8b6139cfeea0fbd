/**
 * Java binding of libsame_edge 1.x: the SAME music autoencoder on CPUs via LiteRT.
 *
 * <pre>{@code
 * try (Model model = Model.open("models/demo", new ModelOptions().threads(2));
 *      EncoderStream enc = model.encoderStream();
 *      DecoderStream dec = model.decoderStream()) {
 *     float[] latents = enc.push(block);      // block: interleaved stereo float32 at 44.1 kHz
 *     float[] audio = dec.push(latents);      // [frames][channels]
 * }
 * }</pre>
 *
 * Loading: {@code System.loadLibrary("same_edge_jni")} on first use of {@link ai.sameedge.Model} — pass
 * {@code -Djava.library.path=DIR} (the directory of libsame_edge_jni.so) on desktop; on Android package
 * libsame_edge_jni.so, libsame_edge.so and libLiteRt.so in {@code jniLibs/<abi>/}. Every failure is a
 * {@link ai.sameedge.SameEdgeException} with the library's status and message.
 */
package ai.sameedge;
