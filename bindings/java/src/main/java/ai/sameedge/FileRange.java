package ai.sameedge;

import java.io.FileDescriptor;

/**
 * Where a model file is inside an open file, for {@link Model#openFd}: an APK's uncompressed asset is
 * {@code (AssetFileDescriptor.getParcelFileDescriptor().getFd(), getStartOffset(), getLength())}; a whole file
 * is {@code (fd, 0, its size)}. The library reads with pread (the descriptor's position is neither used nor
 * moved) and does not close it; the caller may close it once the open returns.
 */
public final class FileRange {
    private final int fd;
    private final FileDescriptor descriptor;
    private final long offset;
    private final long length;

    private FileRange(int fd, FileDescriptor descriptor, long offset, long length) {
        if (offset < 0 || length < 0) {
            throw new SameEdgeException(Status.ARGUMENT, "a file range's offset and length must not be negative");
        }
        this.fd = fd;
        this.descriptor = descriptor;
        this.offset = offset;
        this.length = length;
    }

    /** {@code length} bytes at {@code offset} of the open file descriptor number {@code fd} (Android: ParcelFileDescriptor.getFd()). */
    public static FileRange of(int fd, long offset, long length) {
        return new FileRange(fd, null, offset, length);
    }

    /**
     * {@code length} bytes at {@code offset} of an open {@link FileDescriptor} (FileInputStream.getFD(),
     * AssetFileDescriptor.getFileDescriptor()). Its number is read when the model opens.
     */
    public static FileRange of(FileDescriptor descriptor, long offset, long length) {
        if (descriptor == null) {
            throw new SameEdgeException(Status.ARGUMENT, "the file descriptor is null");
        }
        return new FileRange(-1, descriptor, offset, length);
    }

    /** The descriptor's number now; -1 for a closed {@link FileDescriptor}. */
    int fd() {
        return descriptor == null ? fd : Native.fdOf(descriptor);
    }

    long offset() {
        return offset;
    }

    long length() {
        return length;
    }
}
