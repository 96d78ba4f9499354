// SPDX-License-Identifier: GPL-2.0
/*
 * opal_test_dev: a TEST-ONLY block device whose TCG Opal security protocol is
 * answered by a user-space responder (tests/vm/sed/opal_responder.py).
 *
 * Each disk /dev/opaltestN serves reads/writes from a vmalloc'ed backing
 * store. For the disks named in opal_mask, the module owns an opal_dev
 * (init_opal_dev) and routes the sed-opal ioctls of the disk through the
 * kernel's own sed_ioctl(), so block/sed-opal.c builds every TCG packet. Each
 * Security Send/Receive is forwarded to the responder over the misc device
 * /dev/opaltestN-ctl (one request at a time; see struct otd_req/otd_resp).
 * The responder's replies carry the drive's lock state: while the global
 * range is read-locked (write-locked) reads (writes) fail with an I/O error.
 * Stored bytes are XORed with a keystream from the responder's media key, so
 * a new media key (GenKey, Revert) makes old data unreadable garbage.
 *
 * Other disks behave like non-Opal drives (sed_ioctl with no opal_dev).
 * Never used by the product: storcrypt only issues the standard ioctls.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sed-opal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>

#define OTD_MAX_DISKS 4
#define OTD_BUF 2048
#define OTD_REQ_MAGIC 0x5144544fu   /* "OTDQ": a security request */
#define OTD_NOTE_MAGIC 0x4e44544fu  /* "OTDN": an ioctl note (trace only) */
#define OTD_RESP_MAGIC 0x5244544fu  /* "OTDR": a reply (seq != 0) or state (seq == 0) */
#define OTD_NOTES 64

/* Module -> responder (read()). For a send, `len` bytes of payload follow. */
struct otd_req {
	__u32 magic;
	__u32 seq;      /* request number; for a note: the ioctl's nr */
	__u8 send;      /* 1 = Security Send, 0 = Security Receive */
	__u8 secp;      /* security protocol */
	__u16 spsp;     /* ComID */
	__u32 len;      /* payload length (send) or buffer length (receive) */
} __packed;

/* Responder -> module (write()). For a receive, `len` bytes follow. */
struct otd_resp {
	__u32 magic;
	__u32 seq;      /* 0: state update only */
	__s32 status;   /* 0 or -errno for the transport */
	__u32 len;
	__u32 flags;    /* OTD_ST_* */
	__u32 pad;
	__u64 media_key;
} __packed;
#define OTD_ST_VALID 1u
#define OTD_ST_READ_LOCKED 2u
#define OTD_ST_WRITE_LOCKED 4u

/* ioctl on the ctl device: replay the kernel's saved unlocks, as the NVMe and
 * SCSI resume paths do after a suspend (opal_unlock_from_suspend). Returns 0
 * when every saved range unlocked, 1 when one failed. */
#define OTD_IOC_RESUME _IO('O', 1)

static unsigned int ndisks = 2;
module_param(ndisks, uint, 0444);
MODULE_PARM_DESC(ndisks, "number of disks (1..4)");
static unsigned int opal_mask = 1;
module_param(opal_mask, uint, 0444);
MODULE_PARM_DESC(opal_mask, "bit N set: disk N speaks Opal through its responder");
static unsigned int size_mb = 64;
module_param(size_mb, uint, 0444);
MODULE_PARM_DESC(size_mb, "size of each disk in MiB");
static unsigned int timeout_s = 10;
module_param(timeout_s, uint, 0644);
MODULE_PARM_DESC(timeout_s, "seconds to wait for the responder per transfer");

struct otd {
	int index;
	bool opal_capable;
	struct gendisk *disk;
	u8 *store;
	u64 bytes;
	struct miscdevice misc;
	char misc_name[32];

	struct mutex xfer;         /* one security transfer at a time */
	struct mutex lock;         /* everything below */
	wait_queue_head_t req_wq;  /* responder waits for a request */
	wait_queue_head_t resp_wq; /* transfer waits for the reply */
	struct file *responder;    /* the claiming file, or NULL (drive offline) */
	u32 seq;
	bool pending, taken, done;
	bool send;
	u8 secp;
	u16 spsp;
	void *buf;
	size_t len;
	int status;
	u32 notes[OTD_NOTES];
	unsigned int note_head, note_count;

	/* drive state as the responder last reported it */
	bool online, read_locked, write_locked;
	u64 media_key;

	struct mutex opal_lock;
	struct opal_dev *opal;
};

static struct otd *disks[OTD_MAX_DISKS];
static int otd_major;

static void otd_apply_state(struct otd *d, const struct otd_resp *r)
{
	if (!(r->flags & OTD_ST_VALID))
		return;
	WRITE_ONCE(d->read_locked, !!(r->flags & OTD_ST_READ_LOCKED));
	WRITE_ONCE(d->write_locked, !!(r->flags & OTD_ST_WRITE_LOCKED));
	WRITE_ONCE(d->media_key, r->media_key);
	WRITE_ONCE(d->online, true);
}

static int otd_sec_send_recv(void *data, u16 spsp, u8 secp, void *buffer, size_t len, bool send)
{
	struct otd *d = data;
	long w;
	int ret;

	if (len > OTD_BUF)
		return -EINVAL;
	mutex_lock(&d->xfer);
	mutex_lock(&d->lock);
	if (!d->responder) {
		mutex_unlock(&d->lock);
		mutex_unlock(&d->xfer);
		return -EIO;
	}
	d->seq = d->seq + 1 ? d->seq + 1 : 1;
	d->pending = true;
	d->taken = false;
	d->done = false;
	d->send = send;
	d->secp = secp;
	d->spsp = spsp;
	d->buf = buffer;
	d->len = len;
	d->status = -EIO;
	mutex_unlock(&d->lock);
	wake_up_interruptible(&d->req_wq);

	w = wait_event_timeout(d->resp_wq, READ_ONCE(d->done) || !READ_ONCE(d->responder),
			       (long)timeout_s * HZ);
	mutex_lock(&d->lock);
	if (d->done)
		ret = d->status;
	else
		ret = w == 0 ? -ETIMEDOUT : -EIO;
	d->pending = false;
	d->buf = NULL;
	mutex_unlock(&d->lock);
	mutex_unlock(&d->xfer);
	return ret;
}

/* --- the responder's control device --- */

static struct otd *otd_from_file(struct file *f)
{
	struct miscdevice *m = f->private_data;

	return container_of(m, struct otd, misc);
}

static ssize_t otd_ctl_read(struct file *f, char __user *ubuf, size_t n, loff_t *off)
{
	struct otd *d = otd_from_file(f);
	struct otd_req h = {};
	size_t payload = 0;
	int ret;

	if (n < sizeof(h) + OTD_BUF)
		return -EINVAL;
	for (;;) {
		ret = wait_event_interruptible(d->req_wq,
					       READ_ONCE(d->note_count) ||
					       (READ_ONCE(d->pending) && !READ_ONCE(d->taken)));
		if (ret)
			return ret;
		mutex_lock(&d->lock);
		if (d->responder != f) {
			mutex_unlock(&d->lock);
			return -EPERM;
		}
		if (d->note_count) {
			h.magic = OTD_NOTE_MAGIC;
			h.seq = d->notes[d->note_head];
			d->note_head = (d->note_head + 1) % OTD_NOTES;
			d->note_count--;
			mutex_unlock(&d->lock);
			if (copy_to_user(ubuf, &h, sizeof(h)))
				return -EFAULT;
			return sizeof(h);
		}
		if (d->pending && !d->taken)
			break;
		mutex_unlock(&d->lock);
	}
	h.magic = OTD_REQ_MAGIC;
	h.seq = d->seq;
	h.send = d->send;
	h.secp = d->secp;
	h.spsp = d->spsp;
	h.len = d->len;
	if (d->send)
		payload = d->len;
	ret = 0;
	if (copy_to_user(ubuf, &h, sizeof(h)) || copy_to_user(ubuf + sizeof(h), d->buf, payload))
		ret = -EFAULT;
	else
		d->taken = true;
	mutex_unlock(&d->lock);
	return ret ? ret : (ssize_t)(sizeof(h) + payload);
}

static ssize_t otd_ctl_write(struct file *f, const char __user *ubuf, size_t n, loff_t *off)
{
	struct otd *d = otd_from_file(f);
	struct otd_resp r;
	ssize_t ret = n;

	if (n < sizeof(r) || n > sizeof(r) + OTD_BUF)
		return -EINVAL;
	if (copy_from_user(&r, ubuf, sizeof(r)))
		return -EFAULT;
	if (r.magic != OTD_RESP_MAGIC || r.len != n - sizeof(r))
		return -EINVAL;
	mutex_lock(&d->lock);
	if (!d->responder) {
		d->responder = f; /* the first state message claims the drive */
	} else if (d->responder != f) {
		mutex_unlock(&d->lock);
		return -EBUSY;
	}
	otd_apply_state(d, &r);
	if (r.seq != 0) {
		if (!d->pending || !d->taken || r.seq != d->seq || d->done) {
			ret = -ESTALE;
		} else {
			if (!d->send) {
				if (r.len > d->len)
					ret = -EOVERFLOW;
				else if (copy_from_user(d->buf, ubuf + sizeof(r), r.len))
					ret = -EFAULT;
				else if (r.len < d->len)
					memset((u8 *)d->buf + r.len, 0, d->len - r.len);
			}
			d->status = ret < 0 ? (int)ret : r.status;
			d->done = true;
		}
	}
	mutex_unlock(&d->lock);
	wake_up(&d->resp_wq);
	return ret;
}

static int otd_ctl_release(struct inode *inode, struct file *f)
{
	struct otd *d = otd_from_file(f);

	mutex_lock(&d->lock);
	if (d->responder == f) {
		/* the drive lost power: no I/O until a responder reports its state */
		d->responder = NULL;
		WRITE_ONCE(d->online, false);
		d->note_count = 0;
	}
	mutex_unlock(&d->lock);
	wake_up(&d->resp_wq);
	return 0;
}

static long otd_ctl_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct otd *d = otd_from_file(f);
	bool failed;

	if (cmd != OTD_IOC_RESUME)
		return -ENOTTY;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	mutex_lock(&d->opal_lock);
	if (!d->opal) {
		mutex_unlock(&d->opal_lock);
		return -ENODEV;
	}
	failed = opal_unlock_from_suspend(d->opal);
	mutex_unlock(&d->opal_lock);
	return failed ? 1 : 0;
}

static const struct file_operations otd_ctl_fops = {
	.owner = THIS_MODULE,
	.read = otd_ctl_read,
	.write = otd_ctl_write,
	.release = otd_ctl_release,
	.unlocked_ioctl = otd_ctl_ioctl,
	.llseek = noop_llseek,
};

/* --- the block device --- */

static inline u64 otd_mix(u64 x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* dst = src XOR keystream(media key, byte offset) */
static void otd_crypt(u64 key, u64 off, u8 *dst, const u8 *src, size_t len)
{
	size_t i;
	u64 word = 0, widx = U64_MAX;

	for (i = 0; i < len; i++) {
		u64 o = off + i;

		if (o / 8 != widx) {
			widx = o / 8;
			word = otd_mix(key ^ (widx * 0xd6e8feb86659fd93ull));
		}
		dst[i] = src[i] ^ (u8)(word >> (8 * (o % 8)));
	}
}

static void otd_submit_bio(struct bio *bio)
{
	struct otd *d = bio->bi_bdev->bd_disk->private_data;
	u64 off = (u64)bio->bi_iter.bi_sector << SECTOR_SHIFT;
	bool write = op_is_write(bio_op(bio));
	struct bio_vec bv;
	struct bvec_iter it;
	u64 key;

	if (bio_op(bio) == REQ_OP_FLUSH) {
		bio_endio(bio);
		return;
	}
	if (bio_op(bio) != REQ_OP_READ && bio_op(bio) != REQ_OP_WRITE) {
		bio_io_error(bio);
		return;
	}
	if (d->opal_capable &&
	    (!READ_ONCE(d->online) || (write ? READ_ONCE(d->write_locked) : READ_ONCE(d->read_locked)))) {
		bio_io_error(bio);
		return;
	}
	key = d->opal_capable ? READ_ONCE(d->media_key) : 0;
	bio_for_each_segment(bv, bio, it) {
		u8 *p;

		if (off + bv.bv_len > d->bytes) {
			bio_io_error(bio);
			return;
		}
		p = bvec_kmap_local(&bv);
		if (write)
			otd_crypt(key, off, d->store + off, p, bv.bv_len);
		else
			otd_crypt(key, off, p, d->store + off, bv.bv_len);
		kunmap_local(p);
		off += bv.bv_len;
	}
	bio_endio(bio);
}

static void otd_note(struct otd *d, unsigned int cmd)
{
	mutex_lock(&d->lock);
	if (d->responder && d->note_count < OTD_NOTES) {
		d->notes[(d->note_head + d->note_count) % OTD_NOTES] = _IOC_NR(cmd);
		d->note_count++;
	}
	mutex_unlock(&d->lock);
	wake_up_interruptible(&d->req_wq);
}

static int otd_ioctl(struct block_device *bdev, fmode_t mode, unsigned int cmd, unsigned long arg)
{
	struct otd *d = bdev->bd_disk->private_data;
	struct opal_dev *opal;

	if (!is_sed_ioctl(cmd))
		return -ENOTTY;
	if (!d->opal_capable) /* as a drive without Security Send/Receive */
		return sed_ioctl(NULL, cmd, (void __user *)arg);
	mutex_lock(&d->opal_lock);
	if (!d->opal && READ_ONCE(d->responder))
		d->opal = init_opal_dev(d, otd_sec_send_recv);
	opal = d->opal;
	mutex_unlock(&d->opal_lock);
	otd_note(d, cmd);
	return sed_ioctl(opal, cmd, (void __user *)arg);
}

static const struct block_device_operations otd_fops = {
	.owner = THIS_MODULE,
	.submit_bio = otd_submit_bio,
	.ioctl = otd_ioctl,
};

static void otd_destroy(struct otd *d)
{
	if (!d)
		return;
	if (d->misc.name)
		misc_deregister(&d->misc);
	if (d->disk) {
		del_gendisk(d->disk);
		put_disk(d->disk);
	}
	free_opal_dev(d->opal);
	vfree(d->store);
	kfree(d);
}

static int otd_create(int index)
{
	struct otd *d;
	int ret;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->index = index;
	d->opal_capable = opal_mask & (1u << index);
	d->bytes = (u64)size_mb << 20;
	mutex_init(&d->xfer);
	mutex_init(&d->lock);
	mutex_init(&d->opal_lock);
	init_waitqueue_head(&d->req_wq);
	init_waitqueue_head(&d->resp_wq);
	d->store = vzalloc(d->bytes);
	if (!d->store) {
		kfree(d);
		return -ENOMEM;
	}
	disks[index] = d;

	if (d->opal_capable) {
		snprintf(d->misc_name, sizeof(d->misc_name), "opaltest%d-ctl", index);
		d->misc.minor = MISC_DYNAMIC_MINOR;
		d->misc.name = d->misc_name;
		d->misc.fops = &otd_ctl_fops;
		d->misc.mode = 0600;
		ret = misc_register(&d->misc);
		if (ret) {
			d->misc.name = NULL;
			return ret;
		}
	}

	d->disk = blk_alloc_disk(NUMA_NO_NODE);
	if (!d->disk)
		return -ENOMEM;
	d->disk->major = otd_major;
	d->disk->first_minor = index;
	d->disk->minors = 1;
	d->disk->fops = &otd_fops;
	d->disk->private_data = d;
	d->disk->flags |= GENHD_FL_NO_PART;
	snprintf(d->disk->disk_name, DISK_NAME_LEN, "opaltest%d", index);
	set_capacity(d->disk, d->bytes >> SECTOR_SHIFT);
	ret = add_disk(d->disk);
	if (ret) {
		put_disk(d->disk);
		d->disk = NULL;
	}
	return ret;
}

static void otd_exit(void)
{
	int i;

	for (i = 0; i < OTD_MAX_DISKS; i++) {
		otd_destroy(disks[i]);
		disks[i] = NULL;
	}
	if (otd_major > 0)
		unregister_blkdev(otd_major, "opaltest");
}

static int __init otd_init(void)
{
	int i, ret;

	if (ndisks < 1 || ndisks > OTD_MAX_DISKS || size_mb < 1 || size_mb > 1024)
		return -EINVAL;
	otd_major = register_blkdev(0, "opaltest");
	if (otd_major < 0)
		return otd_major;
	for (i = 0; i < (int)ndisks; i++) {
		ret = otd_create(i);
		if (ret) {
			otd_exit();
			return ret;
		}
	}
	return 0;
}

module_init(otd_init);
module_exit(otd_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("storcrypt test bed: block device with a user-space TCG Opal responder");
