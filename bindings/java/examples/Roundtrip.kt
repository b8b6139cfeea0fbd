// A Kotlin use of the Java binding: stream a second of a tone through the encoder and the decoder.
// docs/EMBEDDING.md shows it; tests/test_java.py builds and runs it (`bindings/java/build.sh kotlin MODEL_DIR`).
import ai.sameedge.Model
import ai.sameedge.ModelOptions
import kotlin.math.PI
import kotlin.math.sin

fun main(args: Array<String>) {
    Model.open(args[0], ModelOptions().threads(2)).use { m ->
        val frames = m.sampleRate()
        val audio = FloatArray(frames * m.channels()) { i -> 0.3f * sin(2 * PI * 220 * (i / m.channels()) / m.sampleRate()).toFloat() }
        m.encoderStream().use { enc ->
            m.decoderStream().use { dec ->
                val z = enc.push(audio) + enc.flush()
                val y = dec.push(z) + dec.flush()
                println("Kotlin: ${z.size / m.latentDim()} latent frames, ${y.size / m.channels()} audio frames, " +
                        "same-edge ${Model.version()} on LiteRT ${Model.litertVersion()}")
            }
        }
    }
}
