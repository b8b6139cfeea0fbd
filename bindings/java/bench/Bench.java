package ai.sameedge.bench;

import ai.sameedge.EncoderStream;
import ai.sameedge.Model;
import ai.sameedge.ModelOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;

/**
 * The JVM side of the per-call benchmark (bench/se_push_bench.c is the C side, same measurements): N pushes
 * into a live encoder stream of one chunk each, and N empty pushes, through push(float[]) (allocates its
 * result), push(float[], int, int, float[], int) (no Java allocation) and push(FloatBuffer, int, FloatBuffer)
 * (direct buffers: no copy). Usage: java ... ai.sameedge.bench.Bench MODEL_DIR [N] [THREADS]
 */
public final class Bench {
    private Bench() {}

    /** One way of pushing {@code frames} frames of the bench input. */
    private interface Push {
        void push(EncoderStream enc, int frames);
    }

    public static void main(String[] args) {
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 200;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        try (Model model = Model.open(args[0], new ModelOptions().threads(threads))) {
            int chunk = model.framesPerChunk() * model.hop();
            float[] audio = new float[chunk * model.channels()];
            int seed = 1;
            for (int i = 0; i < audio.length; i++) { // the C side's input
                seed = seed * 1103515245 + 12345;
                audio[i] = 0.1f * ((float) (seed >>> 8) / (1 << 24) - 0.5f);
            }
            float[] z = new float[64 * model.latentDim()];
            FloatBuffer in = ByteBuffer.allocateDirect(4 * audio.length).order(ByteOrder.nativeOrder()).asFloatBuffer();
            FloatBuffer out = ByteBuffer.allocateDirect(4 * z.length).order(ByteOrder.nativeOrder()).asFloatBuffer();
            in.put(audio);
            run(model, n, chunk, "push(float[])", (enc, frames) -> enc.push(frames == 0 ? new float[0] : audio));
            run(model, n, chunk, "push(float[],..,float[])", (enc, frames) -> enc.push(audio, 0, frames, z, 0));
            run(model, n, chunk, "push(FloatBuffer)", (enc, frames) -> {
                in.clear();
                out.clear();
                enc.push(in, frames, out);
            });
        }
    }

    private static void run(Model model, int n, int chunk, String what, Push push) {
        try (EncoderStream enc = model.encoderStream(1)) {
            report(what + " one chunk", time(enc, n, chunk, push));
            report(what + " 0 frames", time(enc, n, 0, push));
        }
    }

    private static double[] time(EncoderStream enc, int n, int frames, Push push) {
        int warm = frames == 0 ? 20_000 : 5; // empty pushes: let the JIT compile the path first
        double[] t = new double[n];
        for (int i = -warm; i < n; i++) {
            long t0 = System.nanoTime();
            push.push(enc, frames);
            if (i >= 0) {
                t[i] = (System.nanoTime() - t0) / 1e3;
            }
        }
        return t;
    }

    private static void report(String what, double[] t) {
        double mean = Arrays.stream(t).average().orElse(0);
        Arrays.sort(t);
        System.out.printf("Java %-36s median %10.3f us  mean %10.3f us  (n=%d)%n", what, t[t.length / 2], mean,
                t.length);
    }
}
